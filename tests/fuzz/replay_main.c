/* The plain-program side of a fuzz target: replays every file of the
 * directories given through LLVMFuzzerTestOneInput, as libFuzzer would, so
 * that the seed corpus and every crash ever found are retried on each test
 * run. Each input gets a buffer of exactly its size, so that a sanitizer
 * build sees any read past its end. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_support.h"

/* Reads dir/name into a fresh buffer and runs the target on it. */
static int replay_file(const char *dir, const char *name)
{
    char path[4096];
    FILE *f;
    long size;
    uint8_t *data;
    size_t got;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        perror(path);
        return 0;
    }
    data = malloc(size ? (size_t)size : 1);
    got = data ? fread(data, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!data || got != (size_t)size) {
        fprintf(stderr, "%s: could not read it\n", path);
        free(data);
        return 0;
    }
    LLVMFuzzerTestOneInput(data, got);
    free(data);
    return 1;
}

int main(int argc, char **argv)
{
    int runs = 0;

    for (int i = 1; i < argc; i++) {
        DIR *dir = opendir(argv[i]);
        struct dirent *e;

        if (!dir) {
            perror(argv[i]);
            return 2;
        }
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            if (!replay_file(argv[i], e->d_name)) {
                closedir(dir);
                return 2;
            }
            runs++;
        }
        closedir(dir);
    }
    printf("%d inputs replayed\n", runs);
    return runs > 0 ? 0 : 1; /* an empty corpus is a mistake, not a pass */
}
