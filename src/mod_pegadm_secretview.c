/* What the configuration shows of the JWT secret: nothing. mod_info's
 * /server-info and "apachectl -t -D DUMP_CONFIG" print every directive's
 * arguments from the configuration tree, with ${VAR} already replaced, so
 * the secret's directive gets a placeholder there once it has been read
 * (a Define leaves no directive in the tree). A secret written in a configuration file is
 * only as private as that file (or the file of the Define or <Macro> it
 * comes from): one readable by group or others draws the warning a secret
 * file would. A secret given through Define draws a warning of its own:
 * httpd prints the values of Defines. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_fnmatch.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <http_core.h>

APLOG_USE_MODULE(pegadm);

#define WITHHELD "(withheld)"
#define CONFIG_READ                                                                            \
    ((apr_size_t)1024 * 1024) /* a configuration file larger than this is not searched */

#define FILES_MAX 256 /* configuration files searched for a Define's */

/* A configuration file's text (its first CONFIG_READ bytes), or NULL. The
 * caller wipes it (wipe) once done: it may hold the secret. */
static char *read_config(apr_pool_t *p, const char *path, apr_size_t *len)
{
    apr_file_t *f;
    char *buf;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    buf = apr_palloc(p, CONFIG_READ + 1);
    *len = 0;
    apr_file_read_full(f, buf, CONFIG_READ, len);
    apr_file_close(f);
    buf[*len] = '\0';
    return buf;
}

static void wipe(char *text, apr_size_t len)
{
    if (text) {
        memset(text, 0, len);
    }
}

/* Whether the secret stands in the file as it is (not through ${VAR}). */
static int file_holds(apr_pool_t *p, const char *path, const char *secret)
{
    apr_size_t len = 0;
    char *text = read_config(p, path, &len);
    int found = text && strstr(text, secret) != NULL;

    wipe(text, len);
    return found;
}

/* Warns if path, readable by group or others, holds the secret; where
 * says which directive put it there. */
static void check_file(cmd_parms *cmd, const char *path, const char *where, const char *secret)
{
    apr_finfo_t fi;

    if (apr_stat(&fi, path, APR_FINFO_PROT | APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS ||
        fi.filetype != APR_REG || !(fi.protection & (APR_GREAD | APR_WREAD)) ||
        !file_holds(cmd->temp_pool, path, secret)) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM701: %s: the secret is written in '%s' (%s), which is readable by "
                 "group or others; make the file readable by root only (chmod 600), or use "
                 "PegaDMJWTSecretFile",
                 cmd->cmd->name, path, where);
}

/* The files a directive's text comes from: its own, or for one that
 * mod_macro expanded ("macro 'M' (defined on line n of "F") used on line
 * m of "G"") the macro's file and the file of its Use line. */
static apr_array_header_t *source_files(apr_pool_t *p, const ap_directive_t *d)
{
    apr_array_header_t *files = apr_array_make(p, 2, sizeof(const char *));
    const char *rest = d->filename;

    if (rest && strncmp(rest, "macro '", 7) != 0) {
        APR_ARRAY_PUSH(files, const char *) = rest;
    }
    while (rest && (rest = strstr(rest, " of \"")) != NULL) {
        const char *end = strchr(rest + 5, '"');
        if (!end) {
            break;
        }
        APR_ARRAY_PUSH(files, const char *) = apr_pstrmemdup(p, rest + 5, end - rest - 5);
        rest = end;
    }
    return files;
}

/* The name of a Define whose value holds the secret, among the ${NAME}s
 * of text; NULL if none (the secret is inline, or from the environment). */
static const char *define_holding(apr_pool_t *p, const char *text, const char *secret)
{
    const char *at = text;

    while ((at = strstr(at, "${")) != NULL) {
        const char *end = strchr(at + 2, '}');
        const char *name, *value;

        if (!end) {
            break;
        }
        name = apr_pstrmemdup(p, at + 2, end - at - 2);
        if (ap_exists_config_define(name)) {
            value = ap_resolve_env(p, apr_pstrmemdup(p, at, end - at + 1));
            if (value && strstr(value, secret)) {
                return name;
            }
        }
        at = end;
    }
    return NULL;
}

/* Adds path (or the files its glob matches) to the files to search. */
static void add_files(apr_pool_t *p, const char *path, apr_hash_t *seen,
                      apr_array_header_t *queue)
{
    apr_array_header_t *matches = NULL;

    if (!path) {
        return;
    }
    if (strpbrk(path, "*?[") && apr_match_glob(path, &matches, p) == APR_SUCCESS) {
        for (int i = 0; i < matches->nelts; i++) {
            add_files(p, APR_ARRAY_IDX(matches, i, const char *), seen, queue);
        }
        return;
    }
    if (!apr_hash_get(seen, path, APR_HASH_KEY_STRING) && apr_hash_count(seen) < FILES_MAX) {
        apr_hash_set(seen, path, APR_HASH_KEY_STRING, path);
        APR_ARRAY_PUSH(queue, const char *) = path;
    }
}

static void add_tree_files(apr_pool_t *p, const ap_directive_t *d, apr_hash_t *seen,
                           apr_array_header_t *queue)
{
    for (; d; d = d->next) {
        apr_array_header_t *files = source_files(p, d);
        for (int i = 0; i < files->nelts; i++) {
            add_files(p, APR_ARRAY_IDX(files, i, const char *), seen, queue);
        }
        if (d->first_child) {
            add_tree_files(p, d->first_child, seen, queue);
        }
    }
}

/* Scans text line by line: queues the files its Include and
 * IncludeOptional lines name; returns the line number of "Define name"
 * in it, or 0. */
static int scan_config(apr_pool_t *p, char *text, const char *name, apr_hash_t *seen,
                       apr_array_header_t *queue)
{
    int number = 0, found = 0;
    char *line = text;

    while (line && *line) {
        char *next = strchr(line, '\n');
        const char *args = line, *word;

        if (next) {
            *next++ = '\0';
        }
        number++;
        word = ap_getword_conf(p, &args);
        if (!strcasecmp(word, "Include") || !strcasecmp(word, "IncludeOptional")) {
            word = ap_resolve_env(p, ap_getword_conf(p, &args));
            add_files(p, ap_server_root_relative(p, word), seen, queue);
        } else if (!found && !strcasecmp(word, "Define") &&
                   !strcmp(ap_getword_conf(p, &args), name)) {
            found = number;
        }
        line = next;
    }
    return found;
}

/* Where "Define name" is: a Define leaves no directive in the tree, so it
 * is looked for in the files of the tree's directives and in those their
 * Include lines name. */
static const char *find_define(apr_pool_t *p, const char *name, int *line)
{
    apr_hash_t *seen = apr_hash_make(p);
    apr_array_header_t *queue = apr_array_make(p, 16, sizeof(const char *));

    add_tree_files(p, ap_conftree, seen, queue);
    for (int i = 0; i < queue->nelts; i++) {
        const char *path = APR_ARRAY_IDX(queue, i, const char *);
        apr_size_t len = 0;
        char *text = read_config(p, path, &len);

        *line = text ? scan_config(p, text, name, seen, queue) : 0;
        wipe(text, len);
        if (*line) {
            return path;
        }
    }
    return NULL;
}

/* httpd prints every Define's value (apachectl -S, -t -D DUMP_RUN_CFG),
 * which no module can withhold; and the Define's file is as private as an
 * inline secret's must be. */
static void warn_define(cmd_parms *cmd, const char *name, const char *where, const char *secret)
{
    int line = 0;
    const char *path = find_define(cmd->temp_pool, name, &line);
    const char *at = path ? apr_psprintf(cmd->temp_pool, " at %s:%d", path, line) : "";

    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM710: %s at %s takes the secret from Define %s%s, and httpd prints "
                 "every Define's value (apachectl -S, -t -D DUMP_RUN_CFG); give the secret "
                 "with PegaDMJWTSecretFile instead",
                 cmd->cmd->name, where, name, at);
    if (path && strcmp(path, cmd->directive->filename) != 0) { /* its own was checked */
        check_file(cmd, path, apr_psprintf(cmd->temp_pool, "Define %s%s", name, at), secret);
    }
}

/* A secret written in the directive's files, or given through a Define. */
static void check_sources(cmd_parms *cmd, const char *secret)
{
    apr_array_header_t *files = source_files(cmd->temp_pool, cmd->directive);
    const char *where = apr_psprintf(cmd->temp_pool, "%s:%d", cmd->directive->filename,
                                     cmd->directive->line_num);
    const char *define = NULL;

    for (int i = 0; i < files->nelts; i++) {
        const char *path = APR_ARRAY_IDX(files, i, const char *);
        apr_size_t len = 0;
        char *text = read_config(cmd->temp_pool, path, &len);

        if (text && !define) {
            define = define_holding(cmd->temp_pool, text, secret);
        }
        wipe(text, len);
        check_file(cmd, path, where, secret);
    }
    if (define) {
        warn_define(cmd, define, where, secret);
    }
}

void pegadm_secret_withhold(cmd_parms *cmd, const char *secret)
{
    check_sources(cmd, secret);
    cmd->directive->args = WITHHELD;
}
