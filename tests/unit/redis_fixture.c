/* The cache server fixture: processes, certificates, a fake server. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_fixture.h"

#define MAX_PROCS 32

static char dir[256];
static pid_t procs[MAX_PROCS];
static int nprocs;

const char *rf_dir(void)
{
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/pegadm-cache-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        assert_non_null(mkdtemp(dir));
    }
    return dir;
}

const char *rf_path(const char *name)
{
    static char slots[8][512];
    static int next;
    char *out = slots[next++ % 8];

    snprintf(out, sizeof(slots[0]), "%s/%s", rf_dir(), name);
    return out;
}

void rf_sh(const char *cmd)
{
    int status = system(cmd);
    if (status != 0) {
        fail_msg("command failed (%d): %s", status, cmd);
    }
}

void rf_sh_out(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");

    assert_non_null(f);
    if (!fgets(out, (int)size, f)) {
        out[0] = '\0';
    }
    out[strcspn(out, "\r\n")] = '\0';
    assert_int_equal(pclose(f), 0);
}

int rf_have(const char *program)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
    return system(cmd) == 0;
}

int rf_free_port(int family)
{
    struct sockaddr_storage ss = {0};
    socklen_t len =
        family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(family, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    ss.ss_family = (sa_family_t)family;
    if (family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    } else {
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);
    close(fd);
    return port;
}

static int accepts(const char *host, int port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int fd, ok;

    if (port == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", host);
        len = sizeof(*sun);
    } else if (strchr(host, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons((uint16_t)port);
        len = sizeof(*in);
    }
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

pid_t rf_start(const char *name, const char *host, int port, const char *const *argv)
{
    char log[512];
    pid_t pid;

    snprintf(log, sizeof(log), "%s/%s.log", rf_dir(), name);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    assert_true(nprocs < MAX_PROCS);
    procs[nprocs++] = pid;
    for (int i = 0; i < 200; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        if (accepts(host, port)) {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fail_msg("%s exited at start; see %s", argv[0], log);
        }
        nanosleep(&ts, NULL);
    }
    fail_msg("%s does not accept connections on %s:%d", argv[0], host, port);
    return -1;
}

pid_t rf_redis(int port, const char *const *extra)
{
    char portstr[16], name[32];
    const char *argv[64] = {"redis-server", "--port", portstr,  "--bind",
                            "127.0.0.1",    "-::1",   "--save", "",
                            "--appendonly", "no",     "--dir",  rf_dir()};
    int n = 12;

    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(name, sizeof(name), "redis-%d", port);
    for (int i = 0; extra && extra[i] && n < 63; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return rf_start(name, "127.0.0.1", port, argv);
}

void rf_stop(pid_t pid)
{
    if (pid <= 0) {
        return;
    }
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < nprocs; i++) {
        if (procs[i] == pid) {
            procs[i] = procs[--nprocs];
            break;
        }
    }
}

void rf_make_certs(void)
{
    static int made;
    char cmd[4096];
    const char *d = rf_dir();

    if (made) {
        return;
    }
    snprintf(
        cmd, sizeof(cmd),
        "cd '%s' && exec >certs.log 2>&1 && "
        "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
        "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj /CN=pegadm-test-ca && "
        "openssl req -x509 $K -keyout other-ca.key -out other-ca.crt -days 2 "
        "-subj /CN=pegadm-other-ca && "
        "openssl req $K -keyout server.key -out server.csr -subj /CN=cache.test "
        "-addext subjectAltName=DNS:cache.test,IP:127.0.0.1,IP:::1 && "
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-copy_extensions copy -out server.crt -days 2 && "
        "openssl req $K -keyout client.key -out client.csr -subj /CN=pegadm-client && "
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out client.crt -days 2 && chmod 644 *.key",
        d);
    rf_sh(cmd);
    made = 1;
}

void rf_cleanup(void)
{
    char cmd[512];

    while (nprocs > 0) {
        rf_stop(procs[nprocs - 1]);
    }
    if (dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        rf_sh(cmd);
        dir[0] = '\0';
    }
}

/* ---- the fake server: one connection at a time, each read answered ---- */

static void *fake_serve(void *data)
{
    rf_fake_t *f = data;

    for (int conns = 0; conns < 1000; conns++) {
        int fd = accept(f->listen_fd, NULL, NULL);
        char buf[4096];

        if (fd < 0) {
            return NULL; /* closed by rf_fake_stop */
        }
        for (int reads = 0; reads < 1000; reads++) {
            ssize_t n = read(fd, buf, sizeof(buf));
            const char *answer = reads == 0 ? f->first : f->reply;
            if (n <= 0 || send(fd, answer, strlen(answer), MSG_NOSIGNAL) < 0) {
                break;
            }
        }
        close(fd);
    }
    return NULL;
}

void rf_fake_start(rf_fake_t *f, const char *reply)
{
    struct sockaddr_in in = {0};
    socklen_t len = sizeof(in);

    f->first = "$0\r\n\r\n";
    f->reply = reply;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&in, &len), 0);
    f->port = ntohs(in.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

void rf_fake_stop(rf_fake_t *f)
{
    shutdown(f->listen_fd, SHUT_RDWR);
    close(f->listen_fd);
    pthread_join(f->thread, NULL);
}
