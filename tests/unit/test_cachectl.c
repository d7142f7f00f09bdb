/* Cache-Control merging: what other modules set is kept, only "public" and
 * "s-maxage" give way, and quoted commas do not split a directive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include "pegadm_cachectl.h"

static const char *const eager[] = {"private", "no-store", NULL};

static void fields_cdns_cache_by_are_targeted(void **state)
{
    assert_true(pegadm_cache_control_is_targeted("CDN-Cache-Control"));
    assert_true(pegadm_cache_control_is_targeted("cdn-cache-control"));
    assert_true(pegadm_cache_control_is_targeted("Cloudflare-CDN-Cache-Control"));
    assert_true(pegadm_cache_control_is_targeted("Akamai-Cache-Control"));
    assert_true(pegadm_cache_control_is_targeted("Surrogate-Control"));
    assert_true(pegadm_cache_control_is_targeted("edge-control"));
    assert_true(pegadm_cache_control_is_targeted("X-Accel-Expires"));
    assert_false(pegadm_cache_control_is_targeted("Cache-Control"));
    assert_false(pegadm_cache_control_is_targeted("-Cache-Control"));
    assert_false(pegadm_cache_control_is_targeted("Pragma"));
    assert_false(pegadm_cache_control_is_targeted("Set-Cookie"));
}

static void has_finds_whole_directive_names(void **state)
{
    assert_true(pegadm_cache_control_has("no-cache, private", "private"));
    assert_true(pegadm_cache_control_has("Max-Age=60", "max-age"));
    assert_true(pegadm_cache_control_has(" no-store ", "no-store"));
    assert_false(pegadm_cache_control_has("no-cache", "no-cache-x"));
    assert_false(pegadm_cache_control_has("no-cachex", "no-cache"));
    assert_false(pegadm_cache_control_has("no-cache=\"private, x\"", "private"));
    assert_false(pegadm_cache_control_has(NULL, "private"));
    assert_false(pegadm_cache_control_has("", "private"));
}

static void private_adds_to_nothing(void **state)
{
    assert_string_equal(pegadm_cache_control_private(*state, NULL, eager), "private, no-store");
    assert_string_equal(pegadm_cache_control_private(*state, " , ", eager),
                        "private, no-store");
}

static void private_keeps_what_is_there(void **state)
{
    assert_string_equal(pegadm_cache_control_private(*state, "no-cache, private", eager),
                        "no-cache, private, no-store");
    assert_string_equal(
        pegadm_cache_control_private(*state, "no-cache=\"set-cookie, x\", max-age=0", eager),
        "no-cache=\"set-cookie, x\", max-age=0, private, no-store");
}

static void private_drops_an_unterminated_quote(void **state)
{
    assert_string_equal(pegadm_cache_control_private(*state, "max-age=1, no-cache=\"x", eager),
                        "max-age=1, private, no-store");
}

static void private_drops_what_lets_shared_caches_keep_it(void **state)
{
    assert_string_equal(
        pegadm_cache_control_private(*state, "PUBLIC, max-age=600, s-maxage=900", eager),
        "max-age=600, private, no-store");
}

static void private_with_a_cookie_only_needs_private(void **state)
{
    static const char *const cookie[] = {"private", NULL};
    assert_string_equal(pegadm_cache_control_private(*state, "public, max-age=300", cookie),
                        "max-age=300, private");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_cdns_cache_by_are_targeted),
        cmocka_unit_test(has_finds_whole_directive_names),
        POOL_TEST(private_adds_to_nothing),
        POOL_TEST(private_keeps_what_is_there),
        POOL_TEST(private_drops_what_lets_shared_caches_keep_it),
        POOL_TEST(private_drops_an_unterminated_quote),
        POOL_TEST(private_with_a_cookie_only_needs_private),
    };
    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
