"""The chat follows the portal login, on the server side: PegaDMForget at a
logout URL, changed private data pushed again to the same session
(PegaDMPrivateDataRefresh), and one session per log-in for an eager page
and the widget's first POST."""

import re
import time
import urllib.parse

import pytest

import pegadm_harness as harness
from pegadm_harness import (APACHE_MODULES, assert_session, location, parse_vars, pegadm_conf,
                            portal_conf, same_origin_request, session_get)


def load(*names):
    return "".join("LoadModule %s_module %s/mod_%s.so\n" % (n, APACHE_MODULES, n)
                   for n in names)


# --------------------------------------------------------------------------
# PegaDMForget
# --------------------------------------------------------------------------

SESSION = (
    "Session On",
    "SessionCookieName portal_session path=/;httponly",
    'SessionCryptoPassphrase "test-only-session-passphrase"',
)
FORM_AUTH = ("AuthType form", 'AuthName "portal"', "AuthFormProvider file",
             "AuthUserFile conf/htpasswd") + SESSION


def form_portal(dm, forget):
    """A mod_auth_form portal whose logout location (form-logout-handler)
    requires no authentication: no AuthType there, only the session."""
    logout = ["SetHandler form-logout-handler", "AuthFormLogoutLocation /index.html?bye",
              *SESSION, "SessionMaxAge 1", "Require all granted"]
    if forget is not None:
        logout.append("PegaDMForget %s" % forget)
    return (load("request", "session", "session_cookie", "session_crypto", "auth_form")
            + pegadm_conf(dm)
            + location("/dologin", "SetHandler form-login-handler",
                       "AuthFormLoginSuccessLocation /index.html", *FORM_AUTH, auth=False)
            + location("/pegadm/session", "SetHandler pegadm-session", *FORM_AUTH,
                       "Require valid-user", auth=False)
            + location("/logout", *logout, auth=False))


def form_login(server, user):
    body = urllib.parse.urlencode({"httpd_username": user, "httpd_password": harness.PASSWORD})
    resp = server.request("POST", "/dologin", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status in (302, 303), resp
    return resp.header("Set-Cookie").split(";", 1)[0]


def form_session(server, cookie):
    return assert_session(server.request("GET", "/pegadm/session", headers={"Cookie": cookie}))


def log_out(server, cookie):
    return server.request("GET", "/logout", headers={"Cookie": cookie})


@pytest.mark.parametrize("forget", ["On", "Off"])
def test_forget_at_a_form_logout_location_without_authentication(module_httpd, dm, forget):
    server = module_httpd(form_portal(dm, forget), loglevel="info pegadm:debug")
    first = form_session(server, form_login(server, "alice"))
    log_out(server, form_login(server, "alice"))
    again = form_session(server, form_login(server, "alice"))
    if forget == "On":
        assert again != first
        assert [c["sessionId"] for c in dm.creates_for("alice")] == [first, again]
        assert "PEGADM502" in server.error_log()
    else:  # the same test without the directive keeps the session
        assert again == first
        assert len(dm.creates_for("alice")) == 1


def test_forget_drops_only_the_logged_out_users_session(module_httpd, dm):
    server = module_httpd(form_portal(dm, "On"))
    alice = form_session(server, form_login(server, "alice"))
    bob_cookie = form_login(server, "bob")
    bob = form_session(server, bob_cookie)
    log_out(server, form_login(server, "alice"))
    assert form_session(server, bob_cookie) == bob
    assert form_session(server, form_login(server, "alice")) != alice


# A top-level GET from a page of another site (a link, a redirect, the
# identity provider's front-channel logout), as the browser labels it.
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
              "Sec-Fetch-Dest": "document", "Referer": "https://elsewhere.example/"}


def test_a_cross_site_logout_still_drops_the_chat(module_httpd, dm):
    """Deliberately: SSO logout comes from the identity provider's site, and
    the portal's own logout URL is as open to a foreign link
    (docs/security.md, "Logout requests from other sites"). It only drops:
    the answer hands out nothing, and the other users keep their chats."""
    server = module_httpd(form_portal(dm, "On"))
    first = form_session(server, form_login(server, "alice"))
    bob_cookie = form_login(server, "bob")
    bob = form_session(server, bob_cookie)
    answer = server.request("GET", "/logout", headers={
        "Cookie": form_login(server, "alice"), **CROSS_SITE})
    assert answer.status in (302, 303, 307), answer
    assert first.encode() not in answer.body
    assert all(first not in value for value in answer.headers.values())
    again = form_session(server, form_login(server, "alice"))
    assert again != first
    assert [c["sessionId"] for c in dm.creates_for("alice")] == [first, again]
    assert form_session(server, bob_cookie) == bob


def test_a_cross_site_request_to_an_authenticated_logout_location_drops_the_chat(
        module_httpd, dm):
    server = module_httpd(portal_conf(dm, location("/sso-logout", "PegaDMForget On")))
    first = assert_session(session_get(server, "alice"))
    resp = server.request("GET", "/sso-logout", user="alice", headers=CROSS_SITE)
    assert resp.status == 404, resp
    assert assert_session(session_get(server, "alice")) != first
    assert len(dm.creates_for("alice")) == 2


def comparable(resp):
    """An answer without what differs from one request to the next: the
    date and the (encrypted, time-stamped) cookie value."""
    headers = sorted((k.lower(), v) for k, v in resp.headers.items() if k.lower() != "date")
    headers = [(k, re.sub(r"^([^=]+)=[^;]*", r"\1=...", v) if k == "set-cookie" else v)
               for k, v in headers]
    return resp.status, headers, resp.body


def test_the_logout_answer_is_what_the_handler_makes(module_httpd, dm):
    answers = []
    for forget in (None, "On"):
        server = module_httpd(form_portal(dm, forget))
        cookie = form_login(server, "alice")
        form_session(server, cookie)
        answers.append(comparable(log_out(server, cookie)))
        server.stop()
    assert answers[0] == answers[1]
    status, headers, _ = answers[1]
    assert status in (302, 303, 307) and ("location", "/index.html?bye") in headers, answers[1]


def test_forget_where_the_logout_location_authenticates(module_httpd, dm):
    """As behind mod_auth_openidc's ?logout= or mod_auth_mellon's endpoint:
    the location itself authenticates, REMOTE_USER names the customer."""
    server = module_httpd(portal_conf(dm, location("/sso-logout", "PegaDMForget On")))
    first = assert_session(session_get(server, "alice"))
    assert server.request("GET", "/sso-logout", user="alice").status == 404
    assert assert_session(session_get(server, "alice")) != first
    assert len(dm.creates_for("alice")) == 2


def test_forget_comes_before_a_redirect_of_the_logout_location(module_httpd, dm):
    """A per-directory RewriteRule answers in fixups, after authentication,
    as the portal's logout URL may send the browser on to an SSO logout:
    the session is gone by then, and the answer is the redirect."""
    server = module_httpd(load("rewrite") + portal_conf(dm, location(
        "/sso-logout", "PegaDMForget On", "RewriteEngine On",
        "RewriteRule ^ http://127.0.0.1/after-logout [R=302,L]")))
    first = assert_session(session_get(server, "alice"))
    resp = server.request("GET", "/sso-logout", user="alice")
    assert resp.status == 302 and resp.header("Location") == "http://127.0.0.1/after-logout"
    assert assert_session(session_get(server, "alice")) != first


def test_no_eager_session_at_a_logout_url(module_httpd, dm):
    server = module_httpd(portal_conf(dm, location("/eager/", "PegaDM On"), location(
        "/eager/session.shtml", "PegaDMForget On")))
    first = assert_session(session_get(server, "alice"))
    resp = server.request("GET", "/eager/session.shtml", user="alice")
    assert parse_vars(resp.body)["SID"] == b"(none)"
    assert assert_session(session_get(server, "alice")) != first
    assert len(dm.state()["creates"]) == 2


def test_forget_without_a_known_customer_drops_nothing(module_httpd, dm):
    server = module_httpd(portal_conf(
        dm, location("/bye", "PegaDMForget On", "Require all granted", auth=False)))
    first = assert_session(session_get(server, "alice"))
    assert server.request("GET", "/bye").status == 404
    assert assert_session(session_get(server, "alice")) == first


def test_forget_takes_on_or_off(config_test):
    rc, out = config_test(location("/logout", "PegaDMForget maybe"))
    assert rc != 0 and "PegaDMForget" in out


# --------------------------------------------------------------------------
# private data follows the identity
# --------------------------------------------------------------------------

LEVEL = "X-Login-Level"


def level_portal(dm, refresh=None):
    extra = ['PegaDMPrivateData customerId "%{REMOTE_USER}"',
             'PegaDMPrivateData level "%%{HTTP:%s}"' % LEVEL]
    if refresh is not None:
        extra.append("PegaDMPrivateDataRefresh %s" % refresh)
    return portal_conf(dm, location("/eager/", "PegaDM On"), server_extra=extra)


def get_at(server, level, user="alice"):
    return assert_session(session_get(server, user, headers={LEVEL: level}))


def pushes(dm, sid):
    return [p["data"] for p in dm.state()["private_data"] if p["sessionId"] == sid]


def test_changed_private_data_is_pushed_once_to_the_same_session(module_httpd, dm):
    server = module_httpd(level_portal(dm, refresh=1))
    sid = get_at(server, "password")
    assert pushes(dm, sid) == [{"customerId": "alice", "level": "password"}]
    time.sleep(1.1)
    assert get_at(server, "password") == sid  # unchanged: not pushed again
    assert len(pushes(dm, sid)) == 1
    assert get_at(server, "mfa") == sid
    assert pushes(dm, sid)[1:] == [{"customerId": "alice", "level": "mfa"}]
    time.sleep(1.1)
    for _ in range(3):
        assert get_at(server, "mfa") == sid
    assert len(pushes(dm, sid)) == 2
    assert len(dm.state()["creates"]) == 1
    assert dm.state()["sessions"][sid]["privateData"]["level"] == "mfa"


def test_an_eager_page_pushes_changed_data_before_showing_the_session(module_httpd, dm):
    server = module_httpd(level_portal(dm, refresh=1))
    sid = get_at(server, "password")
    time.sleep(1.1)
    resp = server.request("GET", "/eager/session.shtml", user="alice", headers={LEVEL: "mfa"})
    assert parse_vars(resp.body)["SID"] == sid.encode()
    assert pushes(dm, sid)[-1]["level"] == "mfa"


def test_pushes_respect_the_refresh_window(module_httpd, dm):
    server = module_httpd(level_portal(dm, refresh=2))
    sid = get_at(server, "1")
    assert get_at(server, "2") == sid  # within the window of the create's push
    assert len(pushes(dm, sid)) == 1
    time.sleep(2.1)
    assert get_at(server, "2") == sid
    assert [p["level"] for p in pushes(dm, sid)] == ["1", "2"]
    assert get_at(server, "3") == sid  # within the window of that push
    assert [p["level"] for p in pushes(dm, sid)] == ["1", "2"]


def test_refresh_zero_never_pushes_again(module_httpd, dm):
    server = module_httpd(level_portal(dm, refresh=0))
    sid = get_at(server, "1")
    time.sleep(1.1)
    assert get_at(server, "2") == sid
    assert len(pushes(dm, sid)) == 1


def test_unchanged_private_data_is_answered_by_the_local_cache(module_httpd, dm):
    """The child's own copy keeps the digest of the data last pushed: the
    same data again is answered without reading the session cache
    (PEGADM820 at trace1), changed data still goes there and is pushed."""
    server = module_httpd(level_portal(dm, refresh=1), loglevel="info pegadm:trace1")
    conn = harness.KeptConnection(server)  # one child throughout
    local_hits = lambda: server.error_log().count("PEGADM820")

    def get(level):
        return assert_session(conn.request("GET", harness.SESSION_PATH, user="alice",
                                           headers={LEVEL: level}))

    try:
        sid = get("password")  # created by this child, which keeps it
        assert local_hits() == 0
        assert get("password") == sid
        assert harness.wait_for(local_hits, 5) == 1
        time.sleep(1.1)
        assert get("mfa") == sid  # a changed claim: not the copy's, pushed again
        assert [p["level"] for p in pushes(dm, sid)] == ["password", "mfa"]
        assert local_hits() == 1
        assert get("mfa") == sid  # the copy now records that push
        assert harness.wait_for(lambda: local_hits() == 2, 5)
        assert len(pushes(dm, sid)) == 2 and len(dm.state()["creates"]) == 1
    finally:
        conn.close()


def test_a_failing_push_still_hands_out_the_session(module_httpd, dm):
    server = module_httpd(level_portal(dm, refresh=1))
    sid = get_at(server, "1")
    dm.set_mode("http500", applies_to="private_data", count=2)
    for _ in range(2):
        time.sleep(1.1)
        assert get_at(server, "2") == sid  # Pega keeps the older data
    assert [f["endpoint"] for f in dm.state()["faults"]] == ["private_data"] * 2
    assert len(dm.state()["creates"]) == 1
    assert dm.state()["sessions"][sid]["privateData"]["level"] == "1"
    time.sleep(1.1)
    assert get_at(server, "2") == sid  # tried again: now it goes through
    assert dm.state()["sessions"][sid]["privateData"]["level"] == "2"
    assert len(dm.state()["creates"]) == 1
    # logged once for the failing streak (the repeat is at debug level)
    assert harness.wait_for(lambda: server.error_log().count("PEGADM504"), 5) == 1


def test_refresh_values_are_checked(config_test):
    for bad in ("-1", "x", "86401"):
        rc, out = config_test(pegadm_conf(None, service_url="https://127.0.0.1:9",
                                          extra=["PegaDMPrivateDataRefresh %s" % bad]))
        assert rc != 0 and "PegaDMPrivateDataRefresh" in out, (bad, out)


# --------------------------------------------------------------------------
# one session per log-in
# --------------------------------------------------------------------------

def eager_sid(server, user="alice"):
    resp = server.request("GET", "/eager/session.shtml", user=user)
    assert resp.status == 200, resp
    return parse_vars(resp.body)["SID"].decode()


def test_the_widgets_first_post_gets_the_eager_pages_session(module_httpd, dm):
    server = module_httpd(portal_conf(dm, location("/eager/", "PegaDM On")))
    page = eager_sid(server)
    assert eager_sid(server) == page
    assert assert_session(same_origin_request(server, "POST", "alice")) == page
    assert len(dm.state()["creates"]) == 1
    # later POSTs renew, as before
    renewed = assert_session(same_origin_request(server, "POST", "alice"))
    assert renewed != page
    assert len(dm.state()["creates"]) == 2
    assert eager_sid(server) == renewed
    assert assert_session(same_origin_request(server, "POST", "alice")) not in (page, renewed)


def test_a_session_of_the_json_get_is_renewed_by_the_first_post(module_httpd, dm):
    server = module_httpd(portal_conf(dm, location("/eager/", "PegaDM On")))
    got = assert_session(session_get(server, "alice"))
    assert eager_sid(server) == got  # found, not made, by the page
    assert assert_session(same_origin_request(server, "POST", "alice")) != got
    assert len(dm.state()["creates"]) == 2


def test_re_pushes_and_logouts_are_counted(module_httpd, dm):
    server = module_httpd(level_portal(dm, refresh=1) + location(
        "/status", "SetHandler pegadm-status", auth=False) + location(
        "/logout", "PegaDMForget On"))
    sid = get_at(server, "1")
    time.sleep(1.1)
    dm.set_mode("http500", applies_to="private_data", count=1)
    assert get_at(server, "2") == sid
    time.sleep(1.1)
    assert get_at(server, "2") == sid
    server.request("GET", "/logout", user="alice")
    doc = server.request("GET", "/status").json()
    w = [w for w in doc["widgets"] if w["widget"] == harness.WIDGET_ID][0]
    assert w["creates"]["ok"] == 1
    # the create's push, the failed re-push, the re-push that went through
    assert w["privateDataPushes"]["ok"] == 2
    assert w["privateDataPushes"]["http_error"] == 1
    assert w["forgets"] == 1
