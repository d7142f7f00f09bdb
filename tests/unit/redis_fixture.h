/* Real cache servers for the unit tests of the cache clients: redis-server
 * processes on free loopback ports (or unix sockets) in a directory of the
 * test's own, started by fork/exec and stopped by their PID; a throwaway
 * CA made with the openssl command; and a fake server that answers every
 * command with one fixed reply. Include after cmocka.h: its functions
 * assert. */
#ifndef PEGADM_REDIS_FIXTURE_H
#define PEGADM_REDIS_FIXTURE_H

#include <pthread.h>
#include <sys/types.h>

/* The test's directory (made at first use), removed by rf_cleanup. */
const char *rf_dir(void);

/* A loopback TCP port free now (family AF_INET or AF_INET6). */
int rf_free_port(int family);

/* 1 when program is on PATH. */
int rf_have(const char *program);

/* Starts argv (NULL-terminated) with output to rf_dir()/name.log, and
 * waits until host:port (or the unix socket path when port is 0) accepts
 * connections, at most 10 s. Returns the PID. */
pid_t rf_start(const char *name, const char *host, int port, const char *const *argv);

/* A plain redis-server on 127.0.0.1:port with extra arguments (NULL-ended,
 * or NULL). */
pid_t rf_redis(int port, const char *const *extra);

/* SIGKILL and reap (also when stopped). */
void rf_stop(pid_t pid);

/* Certificates under rf_dir(): ca.crt, server.crt/.key (cache.test,
 * 127.0.0.1, ::1), client.crt/.key, other-ca.crt (a CA that signed none
 * of them). Made once. */
void rf_make_certs(void);

/* rf_dir()/name, in static storage per call slot (8 slots, round robin). */
const char *rf_path(const char *name);

/* Runs a shell command, asserting it exits 0. */
void rf_sh(const char *cmd);

/* A shell command's first line of output, in out. */
void rf_sh_out(const char *cmd, char *out, size_t size);

/* Kills every server still running and removes rf_dir(). */
void rf_cleanup(void);

/* A fake server on 127.0.0.1: the first read of a connection is answered
 * with first (the client's handshake: INFO), every later one with reply. */
typedef struct {
    int port;
    int listen_fd;
    const char *first;
    const char *reply;
    pthread_t thread;
} rf_fake_t;

void rf_fake_start(rf_fake_t *f, const char *reply);
void rf_fake_stop(rf_fake_t *f);

#endif
