"""Eager mode (PegaDM On): the session reaches SSI, CGI, proxied
applications and the access log, and a failing service never breaks pages."""

import os

import pytest

import pegadm_harness as harness
from pegadm_harness import (WIDGET_ID, assert_session, echoed_headers, location, parse_vars,
                             portal_conf, session_get)

HEADER = "X-PegaDM-Session"


def eager_site(dm, echo_backend, service_url=None, server_extra=()):
    """Eager locations for SSI, CGI and a proxied app, plus the JSON endpoint."""
    return portal_conf(
        dm,
        location("/eager/", "PegaDM On"),
        location("/cgi-bin/", "PegaDM On"),
        location("/app/", "PegaDM On",
                 'RequestHeader set %s "%%{PEGADM_SESSION_ID}e" env=PEGADM_SESSION_ID' % HEADER,
                 "ProxyPass http://127.0.0.1:%d/" % echo_backend.port),
        location("/open/", "PegaDM On", "Require all granted", auth=False),
        location("/plain/"),
        service_url=service_url,
        server_extra=["RequestHeader unset %s early" % HEADER, *server_extra],
    )


@pytest.fixture
def site(module_httpd, dm, echo_backend):
    return module_httpd(eager_site(dm, echo_backend))


def page_vars(server, path, user="alice", **kwargs):
    resp = server.request("GET", path, user=user, **kwargs)
    assert resp.status == 200, resp
    return parse_vars(resp.body)


def test_ssi_page_sees_the_same_session_as_the_json_endpoint(site, dm):
    seen = page_vars(site, "/eager/session.shtml")
    assert seen["WID"] == WIDGET_ID.encode()
    assert seen["SID"] not in (b"", b"(none)")
    sid = assert_session(session_get(site, "alice"))
    assert seen["SID"] == sid.encode()
    assert len(dm.creates_for("alice")) == 1
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": "alice"}


def test_cgi_sees_the_session(site, dm):
    seen = page_vars(site, "/cgi-bin/session.cgi")
    assert seen["USER"] == b"alice"
    assert seen["WID"] == WIDGET_ID.encode()
    assert seen["SID"] == assert_session(session_get(site, "alice")).encode()
    assert len(dm.creates_for("alice")) == 1


def test_proxied_app_gets_the_session_and_never_the_clients_value(site, dm):
    resp = site.request("GET", "/app/page", user="alice", headers={HEADER: "forged-by-client"})
    assert resp.status == 200, resp
    sid = assert_session(session_get(site, "alice"))
    assert echoed_headers(resp, HEADER) == [sid]


# A log of the session IDs, as an administrator may keep one (privately):
# httpd warns about it (PEGADM705), and the test server is told to expect that.
SESSION_LOG = ('LogFormat "%h %u sid=%{PEGADM_SESSION_ID}e" withsession',
               "CustomLog logs/sessions.log withsession")


def test_access_log_can_show_the_session(module_httpd, dm, echo_backend):
    site = module_httpd(eager_site(dm, echo_backend, server_extra=SESSION_LOG),
                        startup_warnings=["PEGADM705"])
    assert any("PEGADM705" in line for line in harness.pegadm_warnings(site.error_log()))
    seen = page_vars(site, "/eager/session.shtml")
    log = os.path.join(site.root, "logs", "sessions.log")
    harness.wait_for(lambda: b"sid=" + seen["SID"] in site.read(log).encode(), 5,
                     what="the session log line")


def test_session_survives_across_pages_and_users_stay_apart(site, dm):
    alice = page_vars(site, "/eager/session.shtml")["SID"]
    assert page_vars(site, "/cgi-bin/session.cgi")["SID"] == alice
    bob = page_vars(site, "/eager/session.shtml", user="bob")["SID"]
    assert bob not in (alice, b"(none)")
    assert len(dm.state()["creates"]) == 2


def test_anonymous_request_gets_no_session(site, dm):
    assert page_vars(site, "/open/session.shtml", user=None)["SID"] == b"(none)"
    assert dm.state()["creates"] == []


def test_scopes_without_pegadm_on_do_nothing(site, dm):
    assert page_vars(site, "/plain/session.shtml")["SID"] == b"(none)"
    assert dm.state()["creates"] == []


def assert_page_without_session(server):
    assert page_vars(server, "/eager/session.shtml")["SID"] == b"(none)"
    assert page_vars(server, "/cgi-bin/session.cgi")["SID"] == b"(unset)"
    resp = server.request("GET", "/app/page", user="alice", headers={HEADER: "forged-by-client"})
    assert resp.status == 200, resp
    assert echoed_headers(resp, HEADER) == []


def assert_failure_logged(server):
    lines = harness.wait_for(lambda: harness.pegadm_log_lines(server.error_log()), 5,
                             what="a [pegadm:...] line in the error log")
    assert lines


def test_service_down_still_serves_pages(module_httpd, dm, echo_backend, closed_port):
    server = module_httpd(
        eager_site(dm, echo_backend, service_url="http://127.0.0.1:%d" % closed_port),
        startup_warnings=["PEGADM630"])
    assert_page_without_session(server)
    assert_failure_logged(server)


@pytest.mark.parametrize("mode", ["http500", "non_json", "no_session_id"])
def test_service_errors_still_serve_pages(module_httpd, dm, echo_backend, mode):
    server = module_httpd(eager_site(dm, echo_backend))
    dm.set_mode(mode)
    assert_page_without_session(server)
    assert_failure_logged(server)
    dm.set_mode("ok")
    assert page_vars(server, "/eager/session.shtml")["SID"] not in (b"", b"(none)")
