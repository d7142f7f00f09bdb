/* The DM client: how the answer to call 1 is judged, and both calls
 * end to end against the fake service (fake_service.c) on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_service.h"
#include "pegadm_test_pool.h"

#include <stdlib.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "pegadm_dm.h"
#include "pegadm_http.h"
#include "pegadm_jwt.h"

#define TEST_WIDGET  "6f0b3a2e-9c1d-4e5f-8a7b-1c2d3e4f5a6b"
#define TEST_SECRET  "pegadm-test-secret"
#define TEST_NOW_SEC 1700000000

/* ---- pegadm_session_id_is_valid ---- */

#define SID_VALID(s) pegadm_session_id_is_valid(s, sizeof(s) - 1)

static void session_id_alphabet(void **state)
{
    assert_true(SID_VALID("a"));
    assert_true(
        SID_VALID("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:-"));
    assert_true(SID_VALID("3f2b6c1e-7a41-4a5e-9a0d-1b2c3d4e5f60"));
    /* Each neighbour of an allowed range in ASCII, and a few worse ones. */
    assert_false(SID_VALID("a/b"));
    assert_false(SID_VALID("a;b"));
    assert_false(SID_VALID("a@b"));
    assert_false(SID_VALID("a[b"));
    assert_false(SID_VALID("a`b"));
    assert_false(SID_VALID("a{b"));
    assert_false(SID_VALID("a,b"));
    assert_false(SID_VALID("a b"));
    assert_false(SID_VALID("a\"b"));
    assert_false(SID_VALID("a<b"));
    assert_false(SID_VALID("a%b"));
    assert_false(SID_VALID("a+b"));
    assert_false(SID_VALID("a\nb"));
    assert_false(SID_VALID("a\x7f"));
    assert_false(SID_VALID("a\xc3\xa9"));
    assert_false(SID_VALID("a\0b"));
}

static void session_id_length(void **state)
{
    char sid[PEGADM_SESSION_ID_MAX + 1];

    memset(sid, 'x', sizeof(sid));
    assert_false(pegadm_session_id_is_valid(NULL, 0));
    assert_false(pegadm_session_id_is_valid("", 0));
    assert_false(pegadm_session_id_is_valid(sid, 0));
    assert_true(pegadm_session_id_is_valid(sid, 1));
    assert_true(pegadm_session_id_is_valid(sid, 128));
    assert_false(pegadm_session_id_is_valid(sid, 129));
}

/* ---- pegadm_dm_parse_create_answer ---- */

static pegadm_dm_status_t parse(apr_pool_t *p, long status, const char *body, const char **sid,
                                const char **why)
{
    return pegadm_dm_parse_create_answer(p, status, body, strlen(body), sid, why);
}

static void assert_bad_answer(apr_pool_t *p, const char *body)
{
    const char *sid = "unset", *why = NULL;

    assert_int_equal(parse(p, 200, body, &sid, &why), PEGADM_DM_BAD_ANSWER);
    assert_null(sid);
    assert_non_null(why);
    assert_true(strlen(why) < 100);
}

static void answer_2xx_with_session_id(void **state)
{
    const char *sid, *why;
    long ok_statuses[] = {200, 201, 299};
    size_t i;

    for (i = 0; i < sizeof(ok_statuses) / sizeof(ok_statuses[0]); i++) {
        sid = NULL;
        why = "unset";
        assert_int_equal(
            parse(*state, ok_statuses[i], "{\"sessionId\":\"abc-123\"}", &sid, &why),
            PEGADM_DM_OK);
        assert_string_equal(sid, "abc-123");
        assert_null(why);
    }
    assert_int_equal(
        parse(*state, 200, " {\"other\": [1, {}], \"sessionId\": \"s:1.2~3_4\"}\n", &sid, &why),
        PEGADM_DM_OK);
    assert_string_equal(sid, "s:1.2~3_4");
}

static void answer_outside_2xx(void **state)
{
    long statuses[] = {199, 300, 302, 401, 500, 0};
    size_t i;

    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        const char *sid = "unset", *why = NULL;
        char code[8];
        assert_int_equal(parse(*state, statuses[i], "{\"sessionId\":\"abc\"}", &sid, &why),
                         PEGADM_DM_HTTP_STATUS);
        assert_null(sid);
        snprintf(code, sizeof(code), "%ld", statuses[i]);
        assert_non_null(strstr(why, code));
    }
}

static void answer_without_string_session_id(void **state)
{
    assert_bad_answer(*state, "{}");
    assert_bad_answer(*state, "{\"sessionid\":\"abc\"}");
    assert_bad_answer(*state, "{\"session\":{\"sessionId\":\"abc\"}}");
    assert_bad_answer(*state, "{\"sessionId\":123}");
    assert_bad_answer(*state, "{\"sessionId\":1.5}");
    assert_bad_answer(*state, "{\"sessionId\":null}");
    assert_bad_answer(*state, "{\"sessionId\":true}");
    assert_bad_answer(*state, "{\"sessionId\":false}");
    assert_bad_answer(*state, "{\"sessionId\":{\"id\":\"abc\"}}");
    assert_bad_answer(*state, "{\"sessionId\":[\"abc\"]}");
}

static void answer_with_unusable_session_id(void **state)
{
    char body[200];

    assert_bad_answer(*state, "{\"sessionId\":\"\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"a b\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"a\\\"b\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"<script>\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"a\\nb\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"ren\xc3\xa9\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"ren\\u00e9\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"a%0d\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"a\\u0000b\"}");

    snprintf(body, sizeof(body), "{\"sessionId\":\"%0128d\"}", 7);
    assert_int_equal(strlen(body), 16 + 128);
    {
        const char *sid, *why;
        assert_int_equal(parse(*state, 200, body, &sid, &why), PEGADM_DM_OK);
        assert_int_equal(strlen(sid), 128);
    }
    snprintf(body, sizeof(body), "{\"sessionId\":\"%0129d\"}", 7);
    assert_bad_answer(*state, body);
}

static void answer_not_a_json_object(void **state)
{
    const char *sid, *why;

    assert_bad_answer(*state, "");
    assert_bad_answer(*state, "sessionId=abc");
    assert_bad_answer(*state, "<html><body>Bad gateway</body></html>");
    assert_bad_answer(*state, "[{\"sessionId\":\"abc\"}]");
    assert_bad_answer(*state, "\"abc\"");
    assert_bad_answer(*state, "42");
    assert_bad_answer(*state, "null");
    assert_bad_answer(*state, "{\"sessionId\":\"abc\"");
    assert_bad_answer(*state, "{\"sessionId\":\"ab");
    assert_bad_answer(*state, "{\"sessionId\":\"abc\"} trailing");
    assert_bad_answer(*state, "{\"sessionId\":\"abc\"}{}");
    assert_bad_answer(*state, "{'sessionId':'abc'}");
    assert_bad_answer(*state, "{\"sessionId\":\"abc\",}");
    assert_bad_answer(*state, "{\"x\":\"\xc0\xaf\",\"sessionId\":\"abc\"}");
    /* A NUL byte inside the body, which body_len covers. */
    assert_int_equal(
        pegadm_dm_parse_create_answer(*state, 200, "{\"sessionId\":\"abc\"}\0", 20, &sid, &why),
        PEGADM_DM_BAD_ANSWER);
    assert_int_equal(pegadm_dm_parse_create_answer(*state, 200, NULL, 0, &sid, &why),
                     PEGADM_DM_BAD_ANSWER);
}

/* Which of two values would win is the parser's whim: refuse both. */
static void answer_with_duplicate_keys(void **state)
{
    assert_bad_answer(*state, "{\"sessionId\":\"abc\",\"sessionId\":\"def\"}");
    assert_bad_answer(*state, "{\"sessionId\":\"abc\",\"x\":1,\"x\":2}");
}

/* The body is untrusted and may be huge or hostile: it stays out of why. */
static void why_does_not_echo_the_body(void **state)
{
    static const char *bodies[] = {
        "MARKER-not-json",
        "{\"MARKER\": ",
        "{\"sessionId\":\"MARKER with space\"}",
        "{\"sessionId\":\"MARKER\",\"sessionId\":\"MARKER\"}",
        "[\"MARKER\"]",
        "{\"MARKER\":\"\\ud800\"}",
    };
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const char *sid, *why;
        assert_int_equal(parse(*state, 200, bodies[i], &sid, &why), PEGADM_DM_BAD_ANSWER);
        assert_null(strstr(why, "MARKER"));
    }
}

/* ---- both calls against a fake service on 127.0.0.1 ---- */

static pegadm_dm_target_t loopback_target(apr_pool_t *p, int port)
{
    pegadm_dm_target_t t;

    memset(&t, 0, sizeof(t));
    t.service_url = apr_psprintf(p, "http://127.0.0.1:%d", port);
    t.private_data_url = apr_psprintf(p, "http://127.0.0.1:%d/private-data", port);
    t.widget_id = TEST_WIDGET;
    t.secret = (const unsigned char *)TEST_SECRET;
    t.secret_len = strlen(TEST_SECRET);
    t.token_lifetime = 60;
    t.http.timeout = apr_time_from_sec(5);
    t.http.connect_timeout = apr_time_from_sec(2);
    return t;
}

/* The sub-second part of now must not reach the token. */
static apr_time_t test_now(void)
{
    return apr_time_from_sec(TEST_NOW_SEC) + 999999;
}

static const char *expected_bearer(apr_pool_t *p, const char *iss)
{
    return apr_pstrcat(p, "\r\nAuthorization: Bearer ",
                       pegadm_jwt_sign_hs256(p, (const unsigned char *)TEST_SECRET,
                                             strlen(TEST_SECRET), iss, TEST_NOW_SEC,
                                             TEST_NOW_SEC + 60),
                       "\r\n", NULL);
}

static void assert_starts_with(const char *s, const char *prefix)
{
    assert_int_equal(strncmp(s, prefix, strlen(prefix)), 0);
}

static void assert_ends_with(const char *s, size_t len, const char *suffix)
{
    assert_true(len >= strlen(suffix));
    assert_string_equal(s + len - strlen(suffix), suffix);
}

static void create_session_request_and_answer(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *sid, *why;

    svc = fake_service_start(p, FAKE_ANSWER,
                             fake_http_answer(p, "200 OK", "{\"sessionId\":\"sess-1234\"}"));
    t = loopback_target(p, svc->port);
    assert_int_equal(
        pegadm_dm_create_session(p, &t, "o\"brien\\ \xc3\xa9", test_now(), &sid, NULL, &why),
        PEGADM_DM_OK);
    fake_service_stop(p, svc);
    assert_string_equal(sid, "sess-1234");
    assert_null(why);
    assert_starts_with(svc->request, "POST /" TEST_WIDGET "/create HTTP/1.1\r\n");
    assert_non_null(strstr(svc->request, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(svc->request, "\r\nAccept: application/json\r\n"));
    assert_non_null(strstr(svc->request, expected_bearer(p, TEST_WIDGET)));
    assert_null(strstr(svc->request, "\r\nExpect:"));
    assert_ends_with(svc->request, svc->request_len,
                     "\r\n\r\n{\"customerId\":\"o\\\"brien\\\\ \xc3\xa9\"}");
}

static void create_session_refuses_invalid_utf8(void **state)
{
    pegadm_dm_target_t t = loopback_target(*state, fake_service_closed_port());
    const char *sid, *why;

    assert_int_equal(
        pegadm_dm_create_session(*state, &t, "a\xed\xa0\x80", test_now(), &sid, NULL, &why),
        PEGADM_DM_INTERNAL);
    assert_null(sid);
    assert_non_null(strstr(why, "UTF-8"));
}

static void assert_why_keeps_secrets(const char *why)
{
    assert_non_null(why);
    assert_null(strstr(why, TEST_SECRET));
    assert_null(strstr(why, "eyJ")); /* any JOSE header or token */
}

static void create_session_error_status(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *sid, *why;

    svc = fake_service_start(
        p, FAKE_ANSWER, fake_http_answer(p, "401 Unauthorized", "{\"error\":\"bad token\"}"));
    t = loopback_target(p, svc->port);
    assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                     PEGADM_DM_HTTP_STATUS);
    fake_service_stop(p, svc);
    assert_null(sid);
    assert_non_null(strstr(why, "401"));
    assert_non_null(strstr(why, "/" TEST_WIDGET "/create"));
    assert_why_keeps_secrets(why);
}

static void create_session_does_not_follow_redirects(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *sid, *why;

    svc = fake_service_start(p, FAKE_ANSWER,
                             "HTTP/1.1 307 Temporary Redirect\r\n"
                             "Location: http://127.0.0.1:1/elsewhere\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n");
    t = loopback_target(p, svc->port);
    assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                     PEGADM_DM_HTTP_STATUS);
    fake_service_stop(p, svc);
    assert_non_null(strstr(why, "307"));
}

static void create_session_bad_answer_body(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *sid, *why;

    svc =
        fake_service_start(p, FAKE_ANSWER, fake_http_answer(p, "200 OK", "{\"sessionId\":42}"));
    t = loopback_target(p, svc->port);
    assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                     PEGADM_DM_BAD_ANSWER);
    fake_service_stop(p, svc);
    assert_null(sid);
    assert_non_null(strstr(why, "not a string"));
}

/* A body of exactly the limit passes; one byte more fails, whether the
 * size is announced (Content-Length) or only found out while reading. */
static void answer_size_limit(void **state)
{
    apr_pool_t *p = *state;
    char *body = apr_palloc(p, PEGADM_HTTP_MAX_BODY + 2);
    const char *answers[3];
    pegadm_dm_status_t expected[3] = {PEGADM_DM_OK, PEGADM_DM_BAD_ANSWER, PEGADM_DM_BAD_ANSWER};
    size_t i;

    memset(body, ' ', PEGADM_HTTP_MAX_BODY + 1);
    memcpy(body, "{\"sessionId\":\"big\"}", 19);
    body[PEGADM_HTTP_MAX_BODY] = '\0';
    answers[0] = fake_http_answer(p, "200 OK", body);
    body[PEGADM_HTTP_MAX_BODY] = ' ';
    body[PEGADM_HTTP_MAX_BODY + 1] = '\0';
    answers[1] = fake_http_answer(p, "200 OK", body);
    answers[2] = apr_pstrcat(p, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", body, NULL);
    for (i = 0; i < 3; i++) {
        fake_service_t *svc;
        pegadm_dm_target_t t;
        const char *sid, *why;

        svc = fake_service_start(p, FAKE_ANSWER, answers[i]);
        t = loopback_target(p, svc->port);
        assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                         expected[i]);
        fake_service_stop(p, svc);
        if (expected[i] != PEGADM_DM_OK) {
            assert_non_null(strstr(why, "larger than 65536 bytes"));
        }
    }
}

static void http_layer_reports_too_large(void **state)
{
    apr_pool_t *p = *state;
    char *body = apr_palloc(p, PEGADM_HTTP_MAX_BODY + 2);
    pegadm_http_opts_t opts = {NULL, NULL, apr_time_from_sec(5), apr_time_from_sec(2), NULL};
    pegadm_http_response_t resp;
    fake_service_t *svc;

    memset(body, 'x', PEGADM_HTTP_MAX_BODY + 1);
    body[PEGADM_HTTP_MAX_BODY + 1] = '\0';
    svc = fake_service_start(p, FAKE_ANSWER,
                             apr_pstrcat(p, "HTTP/1.1 200 OK\r\n\r\n", body, NULL));
    assert_int_equal(pegadm_http_post_json(p,
                                           apr_psprintf(p, "http://127.0.0.1:%d/", svc->port),
                                           "token", "{}", 2, &opts, &resp),
                     PEGADM_HTTP_TOO_LARGE);
    fake_service_stop(p, svc);
    assert_non_null(resp.error);
}

static void create_session_connection_refused(void **state)
{
    pegadm_dm_target_t t = loopback_target(*state, fake_service_closed_port());
    const char *sid, *why;

    assert_int_equal(
        pegadm_dm_create_session(*state, &t, "alice", test_now(), &sid, NULL, &why),
        PEGADM_DM_UNREACHABLE);
    assert_null(sid);
    assert_non_null(strstr(why, "/create: cannot connect: "));
    assert_why_keeps_secrets(why);
}

static void create_session_timeout(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *sid, *why;

    svc = fake_service_start(p, FAKE_SILENT, NULL);
    t = loopback_target(p, svc->port);
    t.http.timeout = apr_time_from_msec(300);
    assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                     PEGADM_DM_UNREACHABLE);
    fake_service_stop(p, svc);
    assert_non_null(strstr(why, "/create: timed out: "));
}

/* A plain HTTP server where TLS is expected fails the handshake. */
static void tls_handshake_failure(void **state)
{
    apr_pool_t *p = *state;
    pegadm_http_opts_t opts = {NULL, NULL, apr_time_from_sec(5), apr_time_from_sec(2), NULL};
    pegadm_http_response_t resp;
    fake_service_t *svc;

    svc = fake_service_start(p, FAKE_ANSWER_AT_ONCE, fake_http_answer(p, "200 OK", "{}"));
    assert_int_equal(pegadm_http_post_json(p,
                                           apr_psprintf(p, "https://127.0.0.1:%d/", svc->port),
                                           "token", "{}", 2, &opts, &resp),
                     PEGADM_HTTP_TLS);
    fake_service_stop(p, svc);
    assert_non_null(resp.error);
}

/* Other schemes fail before any I/O, even where they would work: file:
 * could read a local file, ftp: would at least try to connect. */
static void only_http_and_https_urls(void **state)
{
    apr_pool_t *p = *state;
    pegadm_http_opts_t opts = {NULL, NULL, apr_time_from_sec(5), apr_time_from_sec(2), NULL};
    pegadm_http_response_t resp;

    assert_int_equal(
        pegadm_http_post_json(p, "file:///dev/null", "token", "{}", 2, &opts, &resp),
        PEGADM_HTTP_ERROR);
    assert_non_null(strstr(resp.error, "file"));
    assert_int_equal(pegadm_http_post_json(
                         p, apr_psprintf(p, "ftp://127.0.0.1:%d/", fake_service_closed_port()),
                         "token", "{}", 2, &opts, &resp),
                     PEGADM_HTTP_ERROR);
}

/* With no proxy configured, the environment's proxy variables are ignored. */
static void environment_proxy_is_ignored(void **state)
{
    apr_pool_t *p = *state;
    const char *dead_proxy = apr_psprintf(p, "http://127.0.0.1:%d", fake_service_closed_port());
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *sid, *why;

    setenv("http_proxy", dead_proxy, 1);
    setenv("ALL_PROXY", dead_proxy, 1);
    svc = fake_service_start(p, FAKE_ANSWER,
                             fake_http_answer(p, "200 OK", "{\"sessionId\":\"direct\"}"));
    t = loopback_target(p, svc->port);
    assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                     PEGADM_DM_OK);
    fake_service_stop(p, svc);
    assert_string_equal(sid, "direct");
}

static int proxy_env_teardown(void **state)
{
    unsetenv("http_proxy");
    unsetenv("ALL_PROXY");
    return pool_teardown(state);
}

static void configured_proxy_is_used(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *proxy;
    pegadm_dm_target_t t;
    const char *sid, *why;

    proxy = fake_service_start(p, FAKE_ANSWER,
                               fake_http_answer(p, "200 OK", "{\"sessionId\":\"proxied\"}"));
    t = loopback_target(p, fake_service_closed_port());
    t.service_url = "http://pega.invalid";
    t.http.proxy = apr_psprintf(p, "http://127.0.0.1:%d", proxy->port);
    assert_int_equal(pegadm_dm_create_session(p, &t, "alice", test_now(), &sid, NULL, &why),
                     PEGADM_DM_OK);
    fake_service_stop(p, proxy);
    assert_string_equal(sid, "proxied");
    assert_starts_with(proxy->request,
                       "POST http://pega.invalid/" TEST_WIDGET "/create HTTP/1.1");
}

static void push_private_data_request(void **state)
{
    apr_pool_t *p = *state;
    json_t *payload = json_pack("{s:s, s:b}", "customerId", "alice", "authenticated", 1);
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *why = "unset";

    svc = fake_service_start(p, FAKE_ANSWER,
                             "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    t = loopback_target(p, svc->port);
    assert_int_equal(
        pegadm_dm_push_private_data(p, &t, "sess-1234", payload, test_now(), NULL, &why),
        PEGADM_DM_OK);
    fake_service_stop(p, svc);
    json_decref(payload);
    assert_null(why);
    assert_starts_with(svc->request, "POST /private-data HTTP/1.1\r\n");
    assert_non_null(strstr(svc->request, expected_bearer(p, "sess-1234")));
    assert_ends_with(svc->request, svc->request_len,
                     "\r\n\r\n{\"customerId\":\"alice\",\"authenticated\":true}");
}

static void push_private_data_error_status(void **state)
{
    apr_pool_t *p = *state;
    json_t *payload = json_pack("{s:s}", "customerId", "alice");
    fake_service_t *svc;
    pegadm_dm_target_t t;
    const char *why;

    svc = fake_service_start(p, FAKE_ANSWER, fake_http_answer(p, "403 Forbidden", "{}"));
    t = loopback_target(p, svc->port);
    assert_int_equal(
        pegadm_dm_push_private_data(p, &t, "sess-1234", payload, test_now(), NULL, &why),
        PEGADM_DM_HTTP_STATUS);
    fake_service_stop(p, svc);
    json_decref(payload);
    assert_non_null(strstr(why, "403"));
    assert_non_null(strstr(why, "/private-data"));
    assert_null(strstr(why, "sess-1234"));
    assert_why_keeps_secrets(why);
}

static void push_private_data_needs_an_object(void **state)
{
    pegadm_dm_target_t t = loopback_target(*state, fake_service_closed_port());
    json_t *payload = json_pack("[s]", "alice");
    const char *why;

    assert_int_equal(
        pegadm_dm_push_private_data(*state, &t, "sess-1234", payload, test_now(), NULL, &why),
        PEGADM_DM_INTERNAL);
    json_decref(payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_id_alphabet),
        cmocka_unit_test(session_id_length),
        POOL_TEST(answer_2xx_with_session_id),
        POOL_TEST(answer_outside_2xx),
        POOL_TEST(answer_without_string_session_id),
        POOL_TEST(answer_with_unusable_session_id),
        POOL_TEST(answer_not_a_json_object),
        POOL_TEST(answer_with_duplicate_keys),
        POOL_TEST(why_does_not_echo_the_body),
        POOL_TEST(create_session_request_and_answer),
        POOL_TEST(create_session_refuses_invalid_utf8),
        POOL_TEST(create_session_error_status),
        POOL_TEST(create_session_does_not_follow_redirects),
        POOL_TEST(create_session_bad_answer_body),
        POOL_TEST(answer_size_limit),
        POOL_TEST(http_layer_reports_too_large),
        POOL_TEST(create_session_connection_refused),
        POOL_TEST(create_session_timeout),
        POOL_TEST(tls_handshake_failure),
        POOL_TEST(only_http_and_https_urls),
        cmocka_unit_test_setup_teardown(environment_proxy_is_ignored, pool_setup,
                                        proxy_env_teardown),
        POOL_TEST(configured_proxy_is_used),
        POOL_TEST(push_private_data_request),
        POOL_TEST(push_private_data_error_status),
        POOL_TEST(push_private_data_needs_an_object),
    };
    int failed;

    apr_initialize();
    if (pegadm_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
