/* The start-up walk's pure checks: address arguments that admit every
 * address, and conditions that hold only if each of their parts does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pegadm_confcheck.h"

static int admit_all(const char *a, const char *b)
{
    const char *args[2] = {a, b};
    return pegadm_subnets_admit_all(args, b ? 2 : 1);
}

static void narrow_address_arguments(void **state)
{
    assert_false(admit_all("192.0.2.10", NULL));
    assert_false(admit_all("10", NULL));
    assert_false(admit_all("10.0.0.0/255.0.0.0", NULL));
    assert_false(admit_all("192.0.2.0/24", "198.51.100.0/24"));
    assert_false(admit_all("0.0.0.0/1", NULL));
    assert_false(admit_all("2001:db8::/32", "::1"));
    assert_false(admit_all("0.0.0.0/1", "::/1"));
}

static void address_arguments_that_admit_everyone(void **state)
{
    assert_true(admit_all("0.0.0.0/0.0.0.0", NULL));
    assert_true(admit_all("0.0.0.0/1", "128.0.0.0/1"));
    assert_true(admit_all("::/1", "8000::/1"));
    assert_true(admit_all("0.0.0.0/0", NULL));
    assert_true(admit_all("not-an-address/x", NULL));
    assert_true(admit_all("", NULL));
}

static void conjunctions(void **state)
{
    assert_true(pegadm_expr_is_conjunction("-R '192.0.2.0/24'"));
    assert_true(pegadm_expr_is_conjunction("%{REMOTE_ADDR} -ipmatch '10.0.0.0/8' && true"));
    assert_true(pegadm_expr_is_conjunction("%{REMOTE_ADDR} != '1.2.3.4' && -R '10.1'"));
    assert_true(pegadm_expr_is_conjunction("%{HTTP_HOST} =~ /a||b/ && -R '10.1'"));
    assert_true(pegadm_expr_is_conjunction("%{HTTP_HOST} == 'x || !y' && -R '10.1'"));
    assert_false(pegadm_expr_is_conjunction("true || -R '10.0.0.0/8'"));
    assert_false(pegadm_expr_is_conjunction("! -R '10.0.0.0/8'"));
    assert_false(pegadm_expr_is_conjunction("!-R '10.0.0.0/8'"));
    assert_false(pegadm_expr_is_conjunction("-R '10.0.0.0/8' -or true"));
    assert_false(pegadm_expr_is_conjunction("-not -R '10.0.0.0/8'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(narrow_address_arguments),
        cmocka_unit_test(address_arguments_that_admit_everyone),
        cmocka_unit_test(conjunctions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
