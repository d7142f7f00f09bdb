/* What the configuration shows of the JWT secret: nothing. mod_info's
 * /server-info and "apachectl -t -D DUMP_CONFIG" print every directive's
 * arguments from the configuration tree, with ${VAR} already replaced, so
 * the secret's directive (and a Define that holds it) get a placeholder
 * there once it has been read. A secret written in a configuration file is
 * only as private as that file: one readable by group or others draws the
 * warning a secret file would. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

APLOG_USE_MODULE(pegadm);

#define WITHHELD "(withheld)"
#define CONFIG_READ                                                                            \
    ((apr_size_t)1024 * 1024) /* a configuration file larger than this is not searched */

/* Replaces the arguments of every Define whose value holds the secret. */
static void hide_in_defines(apr_pool_t *p, ap_directive_t *d, const char *secret)
{
    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "Define") && d->args && strstr(d->args, secret)) {
            const char *args = d->args;
            d->args = apr_pstrcat(p, ap_getword_conf(p, &args), " " WITHHELD, NULL);
        }
        if (d->first_child) {
            hide_in_defines(p, d->first_child, secret);
        }
    }
}

/* Whether the secret stands in the file as it is (not through ${VAR}). */
static int file_holds(apr_pool_t *p, const char *path, const char *secret)
{
    apr_file_t *f;
    char *buf = apr_palloc(p, CONFIG_READ + 1);
    apr_size_t len = 0;
    int found;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return 0;
    }
    apr_file_read_full(f, buf, CONFIG_READ, &len);
    apr_file_close(f);
    buf[len] = '\0';
    found = strstr(buf, secret) != NULL;
    memset(buf, 0, len);
    return found;
}

static void check_inline(cmd_parms *cmd, const char *secret)
{
    const ap_directive_t *d = cmd->directive;
    apr_finfo_t fi;

    if (!d->filename ||
        apr_stat(&fi, d->filename, APR_FINFO_PROT | APR_FINFO_TYPE, cmd->temp_pool) !=
            APR_SUCCESS ||
        fi.filetype != APR_REG || !(fi.protection & (APR_GREAD | APR_WREAD)) ||
        !file_holds(cmd->temp_pool, d->filename, secret)) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM701: %s: the secret is written in '%s' (%s:%d), which is readable by "
                 "group or others; make the file readable by root only (chmod 600), or use "
                 "PegaDMJWTSecretFile",
                 cmd->cmd->name, d->filename, d->filename, d->line_num);
}

void pegadm_secret_withhold(cmd_parms *cmd, const char *secret)
{
    check_inline(cmd, secret);
    cmd->directive->args = WITHHELD;
    if (*secret) {
        hide_in_defines(cmd->pool, ap_conftree, secret);
    }
}
