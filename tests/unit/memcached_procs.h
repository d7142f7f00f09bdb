/* Real memcached processes for the memcached client's tests. */
#ifndef MEMCACHED_PROCS_H
#define MEMCACHED_PROCS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    int v6;         /* listen on ::1 rather than 127.0.0.1 */
    int port;       /* 0: a free one, chosen by mcd_start */
    char path[108]; /* a unix socket instead of a port, when set */
    char spec[160]; /* the server as the client is given it */
    pid_t pid;
} mcd_t;

/* Whether Debian's memcached is installed. */
int mcd_available(void);

/* A loopback port nobody listens on at this moment. */
int mcd_free_port(int v6);

/* Starts memcached as m says and waits (at most 5 s) until it accepts
 * connections: 0, or -1 when it did not. */
int mcd_start(mcd_t *m);

/* Kills it (SIGKILL, after SIGCONT) and reaps it. */
void mcd_kill(mcd_t *m);

void mcd_signal(mcd_t *m, int sig);

/* A new directory for unix sockets, writable by the user memcached runs as. */
int mcd_socket_dir(char *dir, size_t size);

#endif
