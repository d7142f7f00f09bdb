"""Hostile caches, tenants, pages and cache writers: the properties of the
security model (docs/security.md), one group of tests per property."""

import os
import re
import subprocess

import pytest

import pegadm_harness as harness
from pegadm_harness import WIDGET_ID, WIDGET_SECRET, location

WIDGET = "PegaDMWidgetID %s" % WIDGET_ID
SECRET = 'PegaDMJWTSecret "%s"' % WIDGET_SECRET
GOOD = WIDGET + "\n" + SECRET + "\n"


def cited_lines(output):
    return {int(n) for n in re.findall(r"(?:line\s+|\.conf:)(\d+)", output)}


def assert_refused(result, directive, offending):
    rc, output = result
    assert rc != 0, "accepted:\n" + output
    assert directive in output, output
    assert os.path.basename(result.path) in output, output
    assert result.line_of(offending) in cited_lines(output), output


def assert_warned(result, number, directive, offending):
    """Accepted, with warning `number` naming the directive, file and line."""
    rc, output = result
    assert rc == 0 and "Syntax OK" in output, output
    lines = [line for line in output.splitlines() if number in line]
    assert lines, output
    assert any(directive in line and os.path.basename(result.path) in line
               and result.line_of(offending) in cited_lines(line) for line in lines), output


def assert_silent(result, number):
    rc, output = result
    assert rc == 0 and "Syntax OK" in output, output
    assert number not in output, output


# ---- no bearer token in clear on the network ----

@pytest.mark.parametrize("url_directive", ["PegaDMServiceURL", "PegaDMPrivateDataURL"])
@pytest.mark.parametrize("proxy", ["http://proxy.example:3128", "https://10.1.2.3:3128"])
def test_plain_http_service_through_a_remote_proxy_is_refused(config_test, url_directive, proxy):
    bad = "PegaDMProxy %s" % proxy
    result = config_test(GOOD + "%s http://127.0.0.1:8080/x\n%s\n" % (url_directive, bad))
    assert_refused(result, "PegaDMProxy", bad)
    assert url_directive in result.output


def test_a_remote_proxy_in_a_location_below_a_plain_http_service_is_refused(config_test):
    bad = "PegaDMProxy http://proxy.example:3128"
    result = config_test(GOOD + "PegaDMServiceURL http://localhost:8080\n"
                         + location("/app/", bad, "PegaDM On"))
    assert_refused(result, "PegaDMProxy", bad)


def test_a_plain_http_service_in_a_location_below_a_remote_proxy_is_refused(config_test):
    bad = "PegaDMServiceURL http://[::1]:8080"
    result = config_test(GOOD + "PegaDMProxy http://proxy.example:3128\n"
                         + location("/app/", bad, "PegaDM On"))
    assert_refused(result, "PegaDMServiceURL", bad)


@pytest.mark.parametrize("conf", [
    "PegaDMServiceURL http://127.0.0.1:8080\nPegaDMProxy http://127.0.0.1:3128\n",
    "PegaDMServiceURL http://localhost:8080\nPegaDMProxy http://[::1]:3128\n",
    "PegaDMServiceURL https://dm.example\nPegaDMProxy http://proxy.example:3128\n",
    "PegaDMProxy http://proxy.example:3128\n",
])
def test_https_or_a_loopback_proxy_passes(config_test, conf):
    rc, output = config_test(GOOD + conf)
    assert rc == 0 and "Syntax OK" in output, output


# ---- cross-site requests by allow-list ----

@pytest.fixture
def portal(module_httpd, dm):
    return module_httpd(harness.portal_conf(dm))


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_post_or_delete_without_origin_or_fetch_metadata_is_refused(portal, dm, method):
    sid = harness.assert_session(harness.session_get(portal, "alice"))
    resp = portal.request(method, harness.SESSION_PATH, user="alice")
    harness.assert_json_error(resp, 403, "cross_origin")
    assert harness.assert_session(harness.session_get(portal, "alice")) == sid
    assert len(dm.creates_for("alice")) == 1


@pytest.mark.parametrize("site", ["same-origin", "none", "Same-Origin"])
@pytest.mark.parametrize("origin", [None, "https://portal.example"])
def test_fetch_metadata_same_origin_or_none_is_accepted(portal, dm, site, origin):
    """What a browser sends behind a TLS-terminating front end: the page's
    https origin differs from what the back end sees, Sec-Fetch-Site does not."""
    headers = {"Sec-Fetch-Site": site}
    if origin:
        headers["Origin"] = origin
    harness.assert_session(portal.request("POST", harness.SESSION_PATH, user="alice",
                                          headers=headers, body={}))
    resp = portal.request("DELETE", harness.SESSION_PATH, user="alice", headers=headers)
    assert resp.status == 204, resp


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", b"{}"),
    ("application/x-www-form-urlencoded", b"proactiveTrigger=x"),
    ("multipart/form-data; boundary=x", b"--x--\r\n"),
    ("application/jsonx", b"{}"),
    (None, b"{}"),
])
def test_post_body_must_be_json(portal, dm, content_type, body):
    headers = {"Origin": portal.origin}
    if content_type:
        headers["Content-Type"] = content_type
    resp = portal.request("POST", harness.SESSION_PATH, user="alice", headers=headers,
                          body=body)
    harness.assert_json_error(resp, 415, "unsupported_media_type")
    assert dm.state()["creates"] == []


@pytest.mark.parametrize("content_type", ["application/json",
                                          "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_post_bodies_are_accepted(portal, dm, content_type):
    headers = {"Origin": portal.origin, "Content-Type": content_type}
    harness.assert_session(portal.request("POST", harness.SESSION_PATH, user="alice",
                                          headers=headers, body=b'{"proactiveTrigger": "t"}'))


def test_post_without_a_body_needs_no_content_type(portal, dm):
    harness.assert_session(harness.same_origin_request(portal, "POST", "alice"))


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_cross_site_get_is_refused(portal, dm, site):
    resp = portal.request("GET", harness.SESSION_PATH, user="alice",
                          headers={"Sec-Fetch-Site": site})
    harness.assert_json_error(resp, 403, "cross_origin")
    assert dm.state()["creates"] == []


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_same_origin_get_is_accepted(portal, dm, site):
    harness.assert_session(portal.request("GET", harness.SESSION_PATH, user="alice",
                                          headers={"Sec-Fetch-Site": site}))


def test_behind_a_tls_front_end_server_name_with_https_makes_the_origin_match(
        module_httpd, dm):
    """docs/security.md: a browser without Fetch Metadata sends only Origin;
    ServerName https://... gives the back end the scheme the browser sees,
    and the front end passes the browser's Host on (ProxyPreserveHost On)."""
    server = module_httpd(harness.portal_conf(dm) + "ServerName https://portal.example:443\n")
    headers = {"Host": "portal.example", "Origin": "https://portal.example"}
    harness.assert_session(server.request("POST", harness.SESSION_PATH, user="alice",
                                          headers=headers))
    assert server.request("DELETE", harness.SESSION_PATH, user="alice",
                          headers=headers).status == 204
    plain = {"Host": "portal.example", "Origin": "http://portal.example"}
    harness.assert_json_error(server.request("POST", harness.SESSION_PATH, user="alice",
                                             headers=plain), 403, "cross_origin")


# ---- the secret stays secret ----

SERVER_INFO = ("LoadModule info_module %s/mod_info.so\n" % harness.APACHE_MODULES
               + location("/server-info", "SetHandler server-info", auth=False))


def secret_forms(workdir):
    """The same secret given the three ways: (directive line, environment)."""
    path = os.path.join(workdir, "info-secret")
    harness.write_file(path, WIDGET_SECRET + "\n", 0o600)
    return {
        "inline": (SECRET, {}),
        "variable": ('PegaDMJWTSecret "${PEGADM_TEST_SECRET}"',
                     {"PEGADM_TEST_SECRET": WIDGET_SECRET}),
        "file": ('PegaDMJWTSecretFile "%s"' % path, {}),
        "define": ('Define PEGADM_DEFINED_SECRET "%s"\nPegaDMJWTSecret "${PEGADM_DEFINED_SECRET}"'
                   % WIDGET_SECRET, {}),
    }


@pytest.mark.parametrize("form", ["inline", "variable", "file", "define"])
def test_server_info_never_shows_the_secret(module_httpd, dm, workdir, form):
    line, env = secret_forms(workdir)[form]
    secret = WIDGET_SECRET
    conf = (WIDGET + "\n" + line + "\n" + "PegaDMServiceURL %s\n" % dm.url
            + 'PegaDMCAFile "%s"\n' % dm.ca_file + harness.session_location()
            + location("/eager/", "PegaDM On", line) + SERVER_INFO)
    server = module_httpd(conf, env=env,
                          startup_warnings=["PEGADM710"] if form == "define" else ())
    harness.assert_session(harness.session_get(server, "alice"))
    shown = ""
    for query in ("", "?config", "?list", "?server", "?hooks", "?providers"):
        resp = server.request("GET", "/server-info" + query)
        assert resp.status == 200, resp
        shown += resp.text
    assert "PegaDMJWTSecret" in shown or "PegaDMJWTSecretFile" in shown, shown[:3000]
    assert secret not in shown
    assert secret[:12] not in shown


@pytest.mark.parametrize("form", ["inline", "variable", "define"])
def test_dump_config_never_shows_the_secret(config_test, workdir, form):
    line, env = secret_forms(workdir)[form]
    secret = WIDGET_SECRET
    conf = ("LoadModule info_module %s/mod_info.so\n" % harness.APACHE_MODULES
            + WIDGET + "\n" + line + "\n")
    root = harness.make_public_dir(workdir, "dumpconfig-")
    harness.populate_server_root(root, ("alice",))
    path = harness.write_file(os.path.join(root, "conf", "httpd.conf"),
                              harness.render_httpd_conf(root, harness.free_port(), conf))
    proc = subprocess.run([harness.APACHE_BIN, "-t", "-D", "DUMP_CONFIG", "-f", path],
                                  capture_output=True, env=harness.apache_env(env), timeout=30)
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 0 and "PegaDMJWTSecret" in output, output
    assert secret not in output, output


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_an_inline_secret_in_a_config_file_readable_by_others_is_warned_about(
        config_test, workdir, mode):
    include = os.path.join(harness.make_public_dir(workdir, "inline-"), "pegadm-secret.conf")
    harness.write_file(include, SECRET + "\n", mode)
    result = config_test(WIDGET + '\nInclude "%s"\n' % include)
    rc, output = result
    assert rc == 0, output
    lines = [line for line in output.splitlines() if "PegaDMJWTSecret" in line
             and include in line and "readable by group or others" in line]
    assert lines and re.search(r"pegadm-secret\.conf:1\b", lines[0]), output


def test_an_inline_secret_in_a_private_config_file_is_silent(config_test, workdir):
    include = os.path.join(harness.make_public_dir(workdir, "inline-"), "pegadm-secret.conf")
    harness.write_file(include, SECRET + "\n", 0o600)
    rc, output = config_test(WIDGET + '\nInclude "%s"\n' % include)
    assert rc == 0 and "readable by group or others" not in output, output


def test_a_secret_from_the_environment_is_not_an_inline_secret(config_test, workdir):
    include = os.path.join(harness.make_public_dir(workdir, "inline-"), "pegadm-secret.conf")
    harness.write_file(include, 'PegaDMJWTSecret "${PEGADM_TEST_SECRET}"\n', 0o644)
    rc, output = config_test(WIDGET + '\nInclude "%s"\n' % include,
                             env={"PEGADM_TEST_SECRET": WIDGET_SECRET})
    assert rc == 0 and "readable by group or others" not in output, output


# ---- shared caches never get a login ----

def modules(*names):
    return "".join("LoadModule %s_module %s/mod_%s.so\n" % (n, harness.APACHE_MODULES, n)
                   for n in names)


SHARED_CACHE = modules("cache", "cache_socache") + (
    "CacheSocache shmcb\nCacheEnable socache /pegadm/\n"
    "CacheHeader on\n")
SESSION_COOKIE = modules("session", "session_cookie") + (
    "Session On\nSessionCookieName session path=/\nSessionMaxAge 300\n")


def cache_control(resp):
    return {d.strip().lower() for d in (resp.header("Cache-Control") or "").split(",")
            if d.strip()}


def test_a_bootstrap_that_sets_a_cookie_is_not_cached_by_a_shared_cache(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm) + SHARED_CACHE + SESSION_COOKIE,
                          startup_warnings=["PEGADM702"])
    alice = server.request("GET", harness.BOOTSTRAP_PATH,
                           headers={"Cookie": "session=user=alice"})
    assert alice.status == 200 and "user=alice" in alice.header("Set-Cookie"), alice
    assert "public" not in cache_control(alice), alice
    assert {"no-cache", "private"} <= cache_control(alice), alice
    for _ in range(3):
        other = server.request("GET", harness.BOOTSTRAP_PATH)
        assert other.status == 200, other
        assert "alice" not in (other.header("Set-Cookie") or ""), other
        assert "HIT" not in (other.header("X-Cache") or ""), other


def test_a_bootstrap_without_cookies_stays_publicly_cacheable(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm) + SHARED_CACHE)
    first = server.request("GET", harness.BOOTSTRAP_PATH)
    assert cache_control(first) == {"public", "max-age=300"}, first
    again = server.request("GET", harness.BOOTSTRAP_PATH)
    assert again.status == 200 and "HIT" in (again.header("X-Cache") or ""), again


def test_a_cookie_set_by_configuration_also_keeps_the_bootstrap_private(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm, harness.location(
        harness.BOOTSTRAP_PATH, 'Header always add Set-Cookie "tracking=1; path=/"',
        auth=False)))
    resp = server.request("GET", harness.BOOTSTRAP_PATH)
    assert resp.header("Set-Cookie"), resp
    assert "public" not in cache_control(resp) and "private" in cache_control(resp), resp


def test_the_bootstrap_keeps_a_cache_control_set_by_configuration(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm, harness.location(
        harness.BOOTSTRAP_PATH, 'Header set Cache-Control "no-cache"', auth=False)))
    resp = server.request("GET", harness.BOOTSTRAP_PATH)
    assert cache_control(resp) == {"no-cache"}, resp


def test_session_on_over_the_bootstrap_is_warned_about(config_test):
    result = config_test(modules("session", "session_cookie") + GOOD + "Session On\n"
                         + harness.bootstrap_location())
    assert_warned(result, "PEGADM702", "Session On", "Session On")
    assert "SetHandler pegadm-bootstrap" in result.output


def test_session_on_in_a_location_covering_the_bootstrap_is_warned_about(config_test):
    result = config_test(modules("session", "session_cookie") + GOOD
                         + location("/pegadm", "Session On", auth=False)
                         + harness.bootstrap_location())
    assert_warned(result, "PEGADM702", "Session On", "Session On")


def test_session_on_elsewhere_is_not_warned_about(config_test):
    result = config_test(modules("session", "session_cookie") + GOOD
                         + location("/app", "Session On", auth=False)
                         + harness.bootstrap_location()
                         + location("/pegadm/bootstrap.js", "Session Off", auth=False))
    assert_silent(result, "PEGADM702")


def eager_site(dm, *extra):
    return harness.portal_conf(dm, location("/eager/", "PegaDM On", *extra))


def test_an_eager_answer_is_private_and_not_stored(module_httpd, dm):
    server = module_httpd(eager_site(dm))
    resp = server.request("GET", "/eager/session.shtml", user="alice")
    assert harness.parse_vars(resp.body)["SID"], resp
    assert {"private", "no-store"} <= cache_control(resp), resp


def test_an_eager_answer_merges_with_the_cache_control_there(module_httpd, dm):
    server = module_httpd(eager_site(dm, 'Header set Cache-Control "public, max-age=600"'))
    resp = server.request("GET", "/eager/session.shtml", user="alice")
    assert cache_control(resp) == {"private", "no-store", "max-age=600"}, resp


def test_a_page_without_a_session_keeps_its_cache_control(module_httpd, dm):
    server = module_httpd(eager_site(dm) + harness.location(
        "/plain/", 'Header set Cache-Control "public, max-age=600"', auth=False))
    resp = server.request("GET", "/plain/session.shtml")
    assert cache_control(resp) == {"public", "max-age=600"}, resp


# ---- PegaDMCreateLimit counts every create ----

def limited_site(dm, limit="2 60"):
    return harness.portal_conf(dm, location("/eager/", "PegaDM On"),
                               server_extra=["PegaDMCreateLimit %s" % limit])


def forget(server, user):
    assert harness.same_origin_request(server, "DELETE", user).status == 204


def test_gets_after_deletes_count_against_the_create_limit(module_httpd, dm):
    server = module_httpd(limited_site(dm))
    for _ in range(2):
        harness.assert_session(harness.session_get(server, "alice"))
        forget(server, "alice")
    resp = harness.session_get(server, "alice")
    harness.assert_json_error(resp, 429, "rate_limited")
    harness.assert_retry_after(resp, most=60)
    assert len(dm.creates_for("alice")) == 2
    harness.assert_session(harness.session_get(server, "bob"))


def test_eager_pages_and_posts_count_against_the_create_limit(module_httpd, dm):
    server = module_httpd(limited_site(dm))
    page = server.request("GET", "/eager/session.shtml", user="alice")
    assert harness.parse_vars(page.body)["SID"], page
    forget(server, "alice")
    harness.assert_session(harness.same_origin_request(server, "POST", "alice"))
    harness.assert_json_error(harness.same_origin_request(server, "POST", "alice"), 429,
                              "rate_limited")
    forget(server, "alice")
    page = server.request("GET", "/eager/session.shtml", user="alice")
    assert page.status == 200 and harness.parse_vars(page.body)["SID"] == b"(none)", page
    assert len(dm.creates_for("alice")) == 2


def test_a_delete_racing_first_requests_still_makes_one_create(module_httpd, dm):
    import threading
    import time
    server = module_httpd(harness.portal_conf(dm))
    dm.set_mode("delay", applies_to="create", delay_ms=1000)
    results = []

    def client():
        results.append(harness.session_get(server, "alice"))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.4)
    forget(server, "alice")
    for thread in threads:
        thread.join(30)
    sids = {harness.assert_session(r) for r in results}
    assert len(results) == 6 and len(sids) == 1, results
    assert len(dm.creates_for("alice")) == 1


# ---- one customer cannot hold the server ----

def concurrent(count, call):
    import threading
    import time
    barrier = threading.Barrier(count)
    results = [None] * count

    def client(index):
        barrier.wait(timeout=10)
        start = time.monotonic()
        resp = call()
        results[index] = (resp, time.monotonic() - start)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_waiters_for_one_create_are_bounded_per_child(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm, server_extra=["PegaDMCreateWaiters 1"]))
    dm.set_mode("delay", applies_to="create", delay_ms=2000)
    results = concurrent(12, lambda: harness.session_get(server, "alice"))
    refused = [(r, t) for r, t in results if r.status == 503]
    served = [r for r, t in results if r.status == 200]
    # two children (harness MPM settings): one creator, at most one waiter each
    assert len(served) <= 3 and len(refused) >= 9, [r for r, _ in results]
    for resp, elapsed in refused:
        harness.assert_json_error(resp, 503, "upstream_unavailable")
        assert 1 <= harness.assert_retry_after(resp) <= 3, resp
        assert elapsed < 1.5, elapsed
    assert len({harness.assert_session(r) for r in served}) == 1
    assert len(dm.creates_for("alice")) == 1
    # other customers are not held up
    dm.set_mode("ok")
    harness.assert_session(harness.session_get(server, "bob"))


def test_the_default_lets_a_few_tabs_wait(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm))
    dm.set_mode("delay", applies_to="create", delay_ms=1000)
    results = concurrent(6, lambda: harness.session_get(server, "alice"))
    assert len({harness.assert_session(r) for r, _ in results}) == 1
    assert len(dm.creates_for("alice")) == 1


SMALL_CHILD = ("StartServers 1\nServerLimit 1\nThreadsPerChild 10\nMaxRequestWorkers 10\n"
               "MinSpareThreads 1\nMaxSpareThreads 10\n")


def test_one_users_posts_hold_a_share_of_a_small_child_not_all_of_it(module_httpd, dm):
    """20 concurrent POSTs of one user on a 10-thread child, each asking for a
    fresh session of a slow service: by default a quarter of the threads
    (2) works for him, the others are answered at once, and another user's
    request is not held behind his."""
    import threading
    import time
    server = module_httpd(SMALL_CHILD + harness.portal_conf(
        dm, server_extra=["PegaDMCreateLimit 100 60"]))
    dm.set_mode("delay", applies_to="create", delay_ms=2000)
    results = []
    posts = [threading.Thread(target=lambda: results.append(
        harness.same_origin_request(server, "POST", "alice"))) for _ in range(20)]
    for thread in posts:
        thread.start()
    time.sleep(0.4)
    started = time.monotonic()
    other = server.request("GET", harness.BOOTSTRAP_PATH)
    waited = time.monotonic() - started
    for thread in posts:
        thread.join(30)
    assert other.status == 200, other
    assert waited < 1.0, waited
    served = [r for r in results if r.status == 200]
    assert 1 <= len(served) <= 2, results
    assert len(dm.creates_for("alice")) <= 2
    for resp in results:
        if resp.status != 200:
            harness.assert_json_error(resp, 503, "upstream_unavailable")
            assert harness.assert_retry_after(resp) >= 1, resp


def test_create_waiters_out_of_range_is_refused(config_test):
    bad = "PegaDMCreateWaiters 0"
    assert_refused(config_test(GOOD + bad + "\n"), "PegaDMCreateWaiters", bad)


# ---- risky configurations draw a warning ----

@pytest.mark.parametrize("expr", ['"%{HTTP:X-Customer}"', '"%{http:X-Customer}"',
                                  '"%{req:X-Customer}"', "\"%{tolower:%{req_novary:X-C}}\"",
                                  '"%{HTTP_COOKIE}"'])
def test_a_customer_id_from_a_request_header_is_warned_about(config_test, expr):
    line = "PegaDMCustomerID %s" % expr
    result = config_test(GOOD + location("/app/", line, "PegaDM On"))
    assert_warned(result, "PEGADM703", "PegaDMCustomerID", line)


@pytest.mark.parametrize("condition", ["\"%{CONN_REMOTE_ADDR} -ipmatch '192.0.2.10/32'\"",
                                       "\"-R '192.0.2.0/24'\"",
                                       "\"%{REMOTE_ADDR} == '192.0.2.10'\""])
def test_a_customer_id_header_under_a_client_address_condition_is_silent(config_test,
                                                                        condition):
    result = config_test(GOOD + '<If %s>\n    PegaDMCustomerID "%%{HTTP:X-Customer}"\n</If>\n'
                         % condition)
    assert_silent(result, "PEGADM703")


def test_a_customer_id_header_behind_require_ip_is_silent(config_test):
    result = config_test(GOOD + location("/app/", 'PegaDMCustomerID "%{HTTP:X-Customer}"',
                                         "Require ip 192.0.2.10", auth=False))
    assert_silent(result, "PEGADM703")


def test_a_customer_id_from_the_login_is_silent(config_test):
    result = config_test(GOOD + 'PegaDMCustomerID "%{tolower:%{REMOTE_USER}}"\n')
    assert_silent(result, "PEGADM703")


FORWARD = 'RequestHeader set X-PegaDM-Session "%{PEGADM_SESSION_ID}e" env=PEGADM_SESSION_ID'


def test_forwarding_the_session_without_unsetting_the_clients_header_is_warned_about(
        config_test):
    result = config_test(GOOD + location("/app/", "PegaDM On", FORWARD))
    assert_warned(result, "PEGADM704", "RequestHeader", FORWARD)
    assert "X-PegaDM-Session" in result.output


@pytest.mark.parametrize("unset", ["RequestHeader unset X-PegaDM-Session early",
                                   "RequestHeader unset x-pegadm-session early"])
def test_forwarding_after_an_early_unset_is_silent(config_test, unset):
    result = config_test(GOOD + unset + "\n" + location("/app/", "PegaDM On", FORWARD))
    assert_silent(result, "PEGADM704")


def test_an_unset_of_another_header_does_not_count(config_test):
    result = config_test(GOOD + "RequestHeader unset X-Other early\n"
                         + location("/app/", "PegaDM On", FORWARD))
    assert_warned(result, "PEGADM704", "RequestHeader", FORWARD)


def test_an_unset_that_is_not_early_does_not_count(config_test):
    result = config_test(GOOD + location("/app/", "PegaDM On",
                                         "RequestHeader unset X-PegaDM-Session", FORWARD))
    assert_warned(result, "PEGADM704", "RequestHeader", FORWARD)


@pytest.mark.parametrize("line", [
    'LogFormat "%h %u %{PEGADM_SESSION_ID}e" withsession',
    'CustomLog logs/sessions.log "%h %{PEGADM_SESSION_ID}e"',
])
def test_logging_the_session_id_is_warned_about(config_test, line):
    result = config_test(GOOD + line + "\n")
    assert_warned(result, "PEGADM705", line.split()[0], line)


# ---- the start-up walk sees the equivalent forms (issue 23, F18) ----

@pytest.mark.parametrize("line", [
    'LogFormat "%h %u %{pegadm_session_id}e" lowered',
    'CustomLog logs/sessions.log "%h %{Pegadm_Session_Id}e"',
])
def test_logging_the_session_id_in_any_case_is_warned_about(config_test, line):
    result = config_test(GOOD + line + "\n")
    assert_warned(result, "PEGADM705", line.split()[0], line)


def test_forwarding_the_session_in_any_case_is_warned_about(config_test):
    line = 'RequestHeader set X-PegaDM-Session "%{pegadm_session_id}e"'
    result = config_test(GOOD + location("/app/", "PegaDM On", line))
    assert_warned(result, "PEGADM704", "RequestHeader", line)


@pytest.mark.parametrize("expr", ['"%{QUERY_STRING}"', '"%{REQUEST_URI}"', '"%{THE_REQUEST}"',
                                  '"%{tolower:%{query_string}}"', '"%{env:HTTP_X_CUSTOMER}"',
                                  '"%{env:CUSTOMER}"', '"%{reqenv:CUSTOMER}"',
                                  '"%{PATH_INFO}"', '"%{env:MATCH_USER}"'])
def test_a_customer_id_from_the_request_line_or_a_copy_of_it_is_warned_about(config_test,
                                                                             expr):
    line = "PegaDMCustomerID %s" % expr
    copy = 'SetEnvIf X-Customer "(.+)" CUSTOMER=$1\n'
    result = config_test(GOOD + copy + location("/app/", line, "PegaDM On"))
    assert_warned(result, "PEGADM703", "PegaDMCustomerID", line)


@pytest.mark.parametrize("condition", ["\"true || %{REMOTE_ADDR} -ipmatch '192.0.2.0/24'\"",
                                       "\"%{REMOTE_ADDR} -ipmatch '0.0.0.0/0.0.0.0'\"",
                                       "\"-R '0.0.0.0/1' && -R '128.0.0.0/1' || true\"",
                                       "\"! -R '192.0.2.0/24'\"",
                                       "\"%{REMOTE_ADDR} != '192.0.2.10'\"",
                                       "\"%{REMOTE_ADDR} =~ /./\""])
def test_a_condition_that_admits_every_address_is_not_a_client_address_condition(
        config_test, condition):
    line = 'PegaDMCustomerID "%{HTTP:X-Customer}"'
    result = config_test(GOOD + "<If %s>\n    %s\n</If>\n" % (condition, line))
    assert_warned(result, "PEGADM703", "PegaDMCustomerID", line)


@pytest.mark.parametrize("requires", [("Require ip 0.0.0.0/0.0.0.0",),
                                      ("Require ip 192.0.2.10", "Require all granted"),
                                      ("Require ip 0.0.0.0/1 128.0.0.0/1",),
                                      ("Require ip 192.0.2.10", "Require ip ::/1 8000::/1")])
def test_a_require_ip_that_admits_every_address_is_not_a_client_address_condition(
        config_test, requires):
    line = 'PegaDMCustomerID "%{HTTP:X-Customer}"'
    result = config_test(GOOD + location("/app/", line, *requires, auth=False))
    assert_warned(result, "PEGADM703", "PegaDMCustomerID", line)


def test_require_ip_in_a_require_all_is_a_client_address_condition(config_test):
    result = config_test(GOOD + location(
        "/app/", 'PegaDMCustomerID "%{HTTP:X-Customer}"', "<RequireAll>",
        "Require ip 192.0.2.0/24", "Require all granted", "</RequireAll>", auth=False))
    assert_silent(result, "PEGADM703")


@pytest.mark.parametrize("section", ['<Directory "/">', '<LocationMatch "^/pegadm/">',
                                     '<Location ~ "bootstrap">'])
def test_session_on_in_any_section_covering_the_bootstrap_is_warned_about(config_test,
                                                                          section):
    end = "</%s>" % section[1:].split()[0]
    result = config_test(modules("session", "session_cookie") + GOOD
                         + "%s\n    Session On\n%s\n" % (section, end)
                         + harness.bootstrap_location())
    assert_warned(result, "PEGADM702", "Session On", "Session On")


def test_logging_the_widget_id_is_silent(config_test):
    result = config_test(GOOD + 'LogFormat "%h %{PEGADM_WIDGET_ID}e" withwidget\n')
    rc, output = result
    assert rc == 0
    assert not [l for l in output.splitlines()
                if "PEGADM705" in l and result.line_of("withwidget") in cited_lines(l)], output


# ---- tenants stay apart ----

def tenant_db(workdir, name, customer):
    import sqlite3
    path = os.path.join(harness.make_public_dir(workdir, "tenant-"), name + ".sqlite")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE portal_customers (login TEXT NOT NULL, customer_id TEXT)")
        db.execute("INSERT INTO portal_customers VALUES ('alice', ?)", (customer,))
    db.close()
    os.chmod(path, 0o644)
    return path


def test_two_virtual_hosts_with_their_own_databases_never_share_an_answer(
        module_httpd, dm, workdir):
    query = "SELECT customer_id FROM portal_customers WHERE login = %s"
    hosts, dbs = "", {}
    for name, customer in (("tenant-a.example", "C-A"), ("tenant-b.example", "C-B")):
        dbs[name] = tenant_db(workdir, name, customer)
        hosts += ("<VirtualHost *:*>\n  ServerName %s\n  DBDriver sqlite3\n"
                  '  DBDParams "%s"\n  PegaDMCustomerIDQuery "%s"\n'
                  "  PegaDMCustomerIDQueryTTL 300\n</VirtualHost>\n"
                  % (name, dbs[name], query))
    server = module_httpd("LoadModule dbd_module %s/mod_dbd.so\n" % harness.APACHE_MODULES
                          + harness.portal_conf(dm) + hosts)
    a = harness.assert_session(harness.session_get(server, "alice",
                                                   headers={"Host": "tenant-a.example"}))
    b = harness.assert_session(harness.session_get(server, "alice",
                                                   headers={"Host": "tenant-b.example"}))
    assert a != b
    assert [c["customerId"] for c in dm.state()["creates"]] == ["C-A", "C-B"]
    # the answers are cached, each with its own host
    import sqlite3
    with sqlite3.connect(dbs["tenant-a.example"]) as db:
        db.execute("UPDATE portal_customers SET customer_id = 'C-A2'")
    db.close()
    assert harness.assert_session(harness.session_get(
        server, "alice", headers={"Host": "tenant-a.example"})) == a
    assert len(dm.state()["creates"]) == 2


# ---- a cache writer cannot turn back time ----

@pytest.fixture(params=["memcache", "redis"])
def shared_cache(request, workdir):
    import cache_raw
    server = harness.caches.KINDS[request.param](workdir).start()
    server.raw = cache_raw.RAW[request.param](server)
    yield server
    server.stop()


def shared_site(dm, cache, *extra):
    return cache.load_line + harness.portal_conf(dm, server_extra=[cache.directive, *extra])


def session_entry(cache):
    """(key, value) of the one session entry: the longest value (it holds the ID)."""
    entries = [(key, cache.raw.get(key)) for key in cache.raw.keys()]
    entries = [(k, v) for k, v in entries if v is not None]
    assert entries, "nothing in the cache"
    return max(entries, key=lambda kv: len(kv[1]))


def test_an_entry_written_back_after_its_ttl_is_not_honoured(module_httpd, dm, shared_cache):
    import time
    server = module_httpd(shared_site(dm, shared_cache, "PegaDMCacheTTL 2"))
    first = harness.assert_session(harness.session_get(server, "alice"))
    key, value = session_entry(shared_cache)
    time.sleep(3)
    shared_cache.raw.set(key, value)  # no expiry at all on the cache server
    assert harness.assert_session(harness.session_get(server, "alice")) != first
    assert len(dm.creates_for("alice")) == 2


def test_an_entry_written_back_after_a_delete_is_not_honoured(module_httpd, dm, shared_cache):
    server = module_httpd(shared_site(dm, shared_cache))
    first = harness.assert_session(harness.session_get(server, "alice"))
    key, value = session_entry(shared_cache)
    forget(server, "alice")
    shared_cache.raw.set(key, value)
    second = harness.assert_session(harness.session_get(server, "alice"))
    assert second != first
    page = server.request("GET", "/index.html")
    assert page.status == 200
    assert harness.assert_session(harness.session_get(server, "alice")) == second


@pytest.mark.parametrize("garbage", [b"x" * 100000, b"x" * 3000, b"\x00" * 7],
                         ids=["100000 bytes", "3000 bytes", "7 bytes"])
def test_an_oversized_or_undecodable_entry_is_discarded_not_an_outage(
        module_httpd, dm, shared_cache, garbage):
    # garbage from another writer: read at once, not after the creating
    # child's copy has aged (PegaDMLocalCacheMaxAge)
    server = module_httpd(shared_site(dm, shared_cache, "PegaDMLocalCacheMaxAge 0"))
    first = harness.assert_session(harness.session_get(server, "alice"))
    key, _ = session_entry(shared_cache)
    shared_cache.raw.set(key, garbage)
    second = harness.assert_session(harness.session_get(server, "alice"))
    assert second != first
    harness.assert_session(harness.session_get(server, "bob"))
    assert "PEGADM035" in server.error_log() or "PEGADM706" in server.error_log()
    assert "PEGADM033" not in server.error_log()


def test_a_redis_key_of_another_type_is_discarded_not_an_outage(module_httpd, dm, workdir):
    import cache_raw
    cache = harness.RedisServer(workdir).start()
    try:
        raw = cache_raw.RawRedis(cache)
        server = module_httpd(shared_site(dm, cache))
        harness.assert_session(harness.session_get(server, "alice"))
        cache.raw = raw
        key, _ = session_entry(cache)
        raw.replace_with_list(key)
        harness.assert_session(harness.session_get(server, "alice"))
        harness.assert_session(harness.session_get(server, "bob"))
    finally:
        cache.stop()


def test_a_customer_id_answer_written_back_after_its_ttl_is_not_honoured(
        module_httpd, dm, workdir, shared_cache):
    import sqlite3
    import time
    db = tenant_db(workdir, "replay", "C-OLD")
    server = module_httpd(
        "LoadModule dbd_module %s/mod_dbd.so\n" % harness.APACHE_MODULES
        + 'DBDriver sqlite3\nDBDParams "%s"\n' % db
        + shared_site(dm, shared_cache, 'PegaDMCustomerIDQuery "SELECT customer_id FROM '
                      'portal_customers WHERE login = %s"', "PegaDMCustomerIDQueryTTL 2"))
    harness.assert_session(harness.session_get(server, "alice"))
    entries = [(k, shared_cache.raw.get(k)) for k in shared_cache.raw.keys()]
    key, value = min(((k, v) for k, v in entries if v), key=lambda kv: len(kv[1]))
    assert len(entries) == 3 and len(value) < 50, entries  # the answer, the shortest
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE portal_customers SET customer_id = 'C-NEW'")
    conn.close()
    time.sleep(3)
    shared_cache.raw.set(key, value)
    harness.assert_session(harness.session_get(server, "alice"))
    assert [c["customerId"] for c in dm.state()["creates"]] == ["C-OLD", "C-NEW"]


# ---- PegaDMInject never breaks a page ----

INJECT_TAG = b'<script src="/pegadm/bootstrap.js" defer></script>'
TRICKY_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Not </body> here</title>\n"
    b"<style>p::after { content: \"</body>\"; }</style></head>\n"
    b"<body><p id=\"mention\" title=\"</body>\">Help: our chat lives in the element "
    b"pega-wm-chat, loaded from /pegadm/bootstrap.js.</p>\n"
    b"<script>var closing = \"</body>\"; window.pageScriptRan = closing.length === 7;"
    b"</script>\n"
    b"<textarea id=\"notes\"></body></textarea>\n"
    b"<!-- </body> -->\n"
    b"<a href='#' data-x=</body>>x</a>\n"
    b"</body>\n</html>\n")
REAL_END = TRICKY_PAGE.rindex(b"</body>")


def inject_site(dm, *extra):
    return (harness.pegadm_conf(dm, extra=['PegaDMCustomerID "kiosk-7"', *extra])
            + harness.session_location(auth=False) + harness.bootstrap_location()
            + location("/", "PegaDMInject On", auth=False))


def serve_page(server, name, body):
    harness.write_file(os.path.join(server.root, "htdocs", name), body)
    return server.request("GET", "/" + name)


def test_the_tag_goes_where_the_parser_sees_the_body_end(module_httpd, dm):
    server = module_httpd(inject_site(dm))
    resp = serve_page(server, "tricky.html", TRICKY_PAGE)
    assert resp.status == 200, resp
    assert resp.body == TRICKY_PAGE[:REAL_END] + INJECT_TAG + TRICKY_PAGE[REAL_END:], resp.body


@pytest.mark.parametrize("page", [
    b"<html><body><script id=\"pega-wm-chat\" src=\"https://w.example/w.js\"></script>"
    b"</body></html>",
    b"<html><body><script src=\"/pegadm/bootstrap.js\"></script></body></html>",
    b"<html><body><SCRIPT SRC='https://portal.example/pegadm/bootstrap.js?v=2' "
    b"DEFER></SCRIPT></body></html>",
], ids=["widget script", "bootstrap", "absolute bootstrap URL"])
def test_a_page_that_loads_the_widget_is_left_alone(module_httpd, dm, page):
    server = module_httpd(inject_site(dm))
    assert serve_page(server, "loads.html", page).body == page


def test_a_tricky_page_keeps_working_and_gets_the_chat_in_chromium(module_httpd, plain_dm,
                                                                  chromium):
    server = module_httpd(inject_site(plain_dm))
    harness.write_file(os.path.join(server.root, "htdocs", "tricky.html"), TRICKY_PAGE)
    chromium.get(server.origin + "/tricky.html")
    chromium.wait(lambda d: chromium.run("return window.pageScriptRan === true"),
                  "the page's own inline script to run")
    assert chromium.run("return document.getElementById('notes').value") == "</body>"
    assert chromium.run("return document.querySelectorAll("
                        "'script[src=\"/pegadm/bootstrap.js\"]').length") == 1
    facts = chromium.open_chat()
    assert facts["customer"] == "kiosk-7"


# ---- secrets httpd itself would print (issue 23, F19) ----

@pytest.mark.parametrize("proxy", ["http://user:hunter2-proxy-pw@proxy.example:3128",
                                   "https://hunter2-proxy-pw@127.0.0.1:3128"])
def test_a_proxy_url_with_a_password_is_refused_without_repeating_it(config_test, proxy):
    bad = "PegaDMProxy %s" % proxy
    result = config_test(GOOD + bad + "\n")
    assert_refused(result, "PegaDMProxy", bad)
    assert "hunter2" not in result.output, result.output


def test_a_secret_given_through_define_is_warned_about(config_test):
    define = 'Define PEGADM_DEFINED_SECRET "%s"' % WIDGET_SECRET
    result = config_test(WIDGET + "\n" + define + '\nPegaDMJWTSecret "${PEGADM_DEFINED_SECRET}"\n')
    assert_warned(result, "PEGADM710", "Define", define)
    assert "PegaDMJWTSecretFile" in [l for l in result.output.splitlines() if "PEGADM710" in l][0]
    assert WIDGET_SECRET not in result.output


def test_a_define_holding_the_secret_in_a_world_readable_file_is_warned_about(
        config_test, workdir):
    include = os.path.join(harness.make_public_dir(workdir, "define-"), "secret-define.conf")
    harness.write_file(include, 'Define PEGADM_DEFINED_SECRET "%s"\n' % WIDGET_SECRET, 0o644)
    rc, output = config_test(WIDGET + '\nInclude "%s"\nPegaDMJWTSecret "${PEGADM_DEFINED_SECRET}"\n'
                             % include)
    assert rc == 0, output
    lines = [line for line in output.splitlines()
             if "PEGADM701" in line and include in line and "readable by group or others" in line]
    assert lines, output


def test_a_secret_in_a_macro_of_a_world_readable_file_is_warned_about(config_test, workdir):
    include = os.path.join(harness.make_public_dir(workdir, "macro-"), "secret-macro.conf")
    harness.write_file(include, "<Macro PegaSecret>\n%s\n</Macro>\n" % SECRET, 0o644)
    rc, output = config_test("LoadModule macro_module %s/mod_macro.so\n" % harness.APACHE_MODULES
                             + WIDGET + '\nInclude "%s"\nUse PegaSecret\n' % include)
    assert rc == 0, output
    lines = [line for line in output.splitlines()
             if "PEGADM701" in line and include in line and "readable by group or others" in line]
    assert lines, output
