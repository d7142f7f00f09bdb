/* Waiting for a test server stopped with SIGSTOP to be stopped: kill()
 * returns before every thread of the target has stopped, and a request
 * sent at once may still be answered. Linux's /proc only; bounded. */
#ifndef PEGADM_TEST_PROC_STATE_H
#define PEGADM_TEST_PROC_STATE_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* Whether every thread of pid is stopped ('T') or gone. */
static inline int pegadm_test_all_stopped(pid_t pid)
{
    char path[64], line[512];
    struct dirent *e;
    DIR *tasks;
    int all = 1;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    if (!(tasks = opendir(path))) {
        return 1;
    }
    while (all && (e = readdir(tasks))) {
        FILE *f;
        const char *state;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%.20s/stat", (int)pid, e->d_name);
        if (!(f = fopen(path, "r"))) {
            continue;
        }
        state = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
        all = !state || state[1] != ' ' || state[2] == 'T' || state[2] == 't';
        fclose(f);
    }
    closedir(tasks);
    return all;
}

/* SIGSTOP, then at most 2 s for it to take hold. */
static inline void pegadm_test_stop(pid_t pid)
{
    struct timespec pause = {0, 5L * 1000 * 1000};

    kill(pid, SIGSTOP);
    for (int i = 0; i < 400 && !pegadm_test_all_stopped(pid); i++) {
        nanosleep(&pause, NULL);
    }
}

#endif
