/* The customer of a request: PegaDMCustomerID's expression (REMOTE_USER
 * unless set), the check that the value is a usable Pega customer ID, and,
 * with PegaDMCustomerIDQuery, the hand-over to the database lookup in
 * mod_pegadm_dbd.c. What is done with the ID is the session op's
 * (mod_pegadm_session.c). */
#include "mod_pegadm.h"

#include <string.h>

#include "pegadm_identity.h"

APLOG_USE_MODULE(pegadm);

/* Whether id may be used; refusals other than "empty" are logged. */
static int usable_customer_id(request_rec *r, const char *id)
{
    pegadm_id_check_t check = id ? pegadm_customer_id_check(id, strlen(id)) : PEGADM_ID_EMPTY;

    if (check != PEGADM_ID_OK && check != PEGADM_ID_EMPTY) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "PEGADM032: refusing customer ID (%" APR_SIZE_T_FMT
                      " bytes): %s; treated as "
                      "not authenticated",
                      strlen(id), pegadm_id_check_reason(check));
    }
    return check == PEGADM_ID_OK;
}

/* With PegaDMCustomerIDQuery the expression gives the log-in name, and the
 * database the customer ID; both are checked. */
pegadm_customer_status_t pegadm_customer_id(request_rec *r, const pegadm_dir_conf_t *d,
                                            const char **out)
{
    const char *id = r->user, *err = NULL;
    pegadm_customer_status_t st = PEGADM_CUSTOMER_OK;

    if (d->customer_id) {
        id = ap_expr_str_exec(r, d->customer_id, &err);
        if (err) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "PEGADM031: PegaDMCustomerID: evaluating the expression failed: %s",
                          err);
            return PEGADM_CUSTOMER_NONE;
        }
    }
    if (!usable_customer_id(r, id)) {
        return PEGADM_CUSTOMER_NONE;
    }
    if (d->cid_query) {
        st = pegadm_dbd_customer_id(r, d, id, &id);
        if (st == PEGADM_CUSTOMER_OK && !usable_customer_id(r, id)) {
            st = PEGADM_CUSTOMER_NONE;
        }
    }
    if (st == PEGADM_CUSTOMER_OK) {
        apr_table_setn(r->notes, PEGADM_CUSTOMER_NOTE, id);
        *out = id;
    }
    return st;
}
