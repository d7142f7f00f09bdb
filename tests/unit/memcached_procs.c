/* Real memcached processes for the client's tests: started on a free
 * loopback port (127.0.0.1 or ::1) or a unix socket, stopped by PID. */
#include "memcached_procs.h"
#include "proc_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MEMCACHED_BIN "/usr/bin/memcached"

int mcd_available(void)
{
    return access(MEMCACHED_BIN, X_OK) == 0;
}

static void fill_addr(const mcd_t *m, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (m->path[0]) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", m->path);
        *len = sizeof(*sun);
    } else if (m->v6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)m->port);
        in6->sin6_addr = in6addr_loopback;
        *len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)m->port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof(*in);
    }
}

int mcd_free_port(int v6)
{
    mcd_t m = {.v6 = v6};
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0), port = -1;

    fill_addr(&m, &ss, &len);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                        : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int answers(const mcd_t *m)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, ok;

    fill_addr(m, &ss, &len);
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void exec_memcached(const mcd_t *m)
{
    char port[16];
    const char *argv[16];
    int n = 0, devnull = open("/dev/null", O_RDWR);

    if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    snprintf(port, sizeof(port), "%d", m->port);
    argv[n++] = MEMCACHED_BIN;
    argv[n++] = "-U0";
    argv[n++] = "-t1";
    argv[n++] = "-m16";
    if (geteuid() == 0) { /* memcached refuses to run as root */
        argv[n++] = "-u";
        argv[n++] = getpwnam("memcache") ? "memcache" : "nobody";
    }
    if (m->path[0]) {
        argv[n++] = "-s";
        argv[n++] = m->path;
        argv[n++] = "-a0666";
    } else {
        argv[n++] = "-l";
        argv[n++] = m->v6 ? "::1" : "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = port;
    }
    argv[n] = NULL;
    execv(MEMCACHED_BIN, (char *const *)argv);
    _exit(127);
}

int mcd_start(mcd_t *m)
{
    struct timespec pause = {0, 20L * 1000 * 1000};

    if (!m->path[0] && m->port <= 0) {
        m->port = mcd_free_port(m->v6);
    }
    if (m->path[0]) {
        snprintf(m->spec, sizeof(m->spec), "%s", m->path);
    } else {
        snprintf(m->spec, sizeof(m->spec), m->v6 ? "[::1]:%d" : "127.0.0.1:%d", m->port);
    }
    m->pid = fork();
    if (m->pid == 0) {
        exec_memcached(m);
    }
    for (int i = 0; m->pid > 0 && i < 250; i++) { /* at most 5 s */
        if (answers(m)) {
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    mcd_kill(m);
    return -1;
}

void mcd_kill(mcd_t *m)
{
    if (m->pid > 0) {
        kill(m->pid, SIGCONT);
        kill(m->pid, SIGKILL);
        waitpid(m->pid, NULL, 0);
    }
    m->pid = 0;
}

void mcd_signal(mcd_t *m, int sig)
{
    if (m->pid > 0 && sig == SIGSTOP) {
        pegadm_test_stop(m->pid);
    } else if (m->pid > 0) {
        kill(m->pid, sig);
    }
}

int mcd_socket_dir(char *dir, size_t size)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, size, "%s/pegadm-mcd-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    /* memcached drops root before it makes the socket */
    return mkdtemp(dir) && chmod(dir, 0777) == 0 ? 0 : -1;
}
