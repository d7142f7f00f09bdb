"""The pegadm-session handler, row by row of the contract's table."""

import time

import pytest

import pegadm_harness as harness
from pegadm_harness import (SESSION_PATH, assert_json_error, assert_protective_headers,
                             assert_retry_after, assert_session, portal_conf,
                             same_origin_request, session_get)


@pytest.fixture
def portal(module_httpd, dm):
    return module_httpd(portal_conf(dm))


def test_get_creates_once_then_serves_the_cached_session(portal, dm):
    first = assert_session(session_get(portal, "alice"))
    again = assert_session(session_get(portal, "alice"))
    assert again == first
    creates = dm.creates_for("alice")
    assert [c["sessionId"] for c in creates] == [first]
    assert creates[0]["widget"] == harness.WIDGET_ID
    assert dm.state()["sessions"][first]["privateData"] == {"customerId": "alice"}


def test_get_answers_exactly_session_and_widget(portal, dm):
    doc = session_get(portal, "alice").json()
    assert set(doc) == {"sessionId", "widgetId"}


@pytest.mark.parametrize("body", [None, {"proactiveTrigger": "welcome-offer"}])
def test_post_always_creates_a_fresh_session_that_replaces_the_cached_one(portal, dm, body):
    cached = assert_session(session_get(portal, "alice"))
    fresh = assert_session(same_origin_request(portal, "POST", "alice", body=body))
    assert fresh != cached
    assert [c["sessionId"] for c in dm.creates_for("alice")] == [cached, fresh]
    assert dm.state()["sessions"][fresh]["privateData"] == {"customerId": "alice"}
    assert assert_session(session_get(portal, "alice")) == fresh
    assert len(dm.creates_for("alice")) == 2


def test_post_without_a_cached_session(portal, dm):
    fresh = assert_session(same_origin_request(portal, "POST", "alice"))
    assert assert_session(session_get(portal, "alice")) == fresh
    assert len(dm.creates_for("alice")) == 1


def test_delete_forgets_the_session(portal, dm):
    first = assert_session(session_get(portal, "alice"))
    resp = same_origin_request(portal, "DELETE", "alice")
    assert resp.status == 204, resp
    assert resp.body == b""
    assert_protective_headers(resp)
    second = assert_session(session_get(portal, "alice"))
    assert second != first
    assert len(dm.creates_for("alice")) == 2


def test_delete_only_forgets_that_user(portal, dm):
    alice = assert_session(session_get(portal, "alice"))
    bob = assert_session(session_get(portal, "bob"))
    assert same_origin_request(portal, "DELETE", "alice").status == 204
    assert assert_session(session_get(portal, "bob")) == bob
    assert assert_session(session_get(portal, "alice")) != alice


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_other_methods_are_not_allowed(portal, dm, method):
    resp = same_origin_request(portal, method, "alice", body={"x": 1})
    assert_json_error(resp, 405)
    allowed = {m.strip() for m in (resp.header("Allow") or "").split(",")}
    assert allowed == {"GET", "POST", "DELETE"}, resp.header("Allow")
    assert dm.state()["creates"] == []


def test_no_user_is_unauthenticated(module_httpd, dm):
    server = module_httpd(harness.pegadm_conf(dm) + harness.session_location(
        SESSION_PATH, "Require all granted", auth=False))
    assert_json_error(session_get(server, None), 401, "unauthenticated")
    assert_json_error(same_origin_request(server, "POST", None), 401, "unauthenticated")
    assert dm.state()["creates"] == []


FOREIGN = {
    "foreign origin": lambda s: {"Origin": "https://evil.example"},
    "origin null": lambda s: {"Origin": "null"},
    "other port": lambda s: {"Origin": "http://127.0.0.1:%d" % (s.port + 1)},
    "other scheme": lambda s: {"Origin": "https://127.0.0.1:%d" % s.port},
    "other host name": lambda s: {"Origin": "http://localhost:%d" % s.port},
    "origin with a path trick": lambda s: {"Origin": s.origin + ".evil.example"},
    "fetch cross-site": lambda s: {"Sec-Fetch-Site": "cross-site"},
    "fetch same-site": lambda s: {"Sec-Fetch-Site": "same-site"},
    "own origin but cross-site": lambda s: {"Origin": s.origin, "Sec-Fetch-Site": "cross-site"},
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_cross_origin_post_is_refused(portal, dm, case):
    resp = portal.request("POST", SESSION_PATH, user="alice", headers=FOREIGN[case](portal))
    assert_json_error(resp, 403, "cross_origin")
    assert dm.state()["creates"] == []


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_cross_origin_delete_is_refused_and_forgets_nothing(portal, dm, case):
    sid = assert_session(session_get(portal, "alice"))
    resp = portal.request("DELETE", SESSION_PATH, user="alice", headers=FOREIGN[case](portal))
    assert_json_error(resp, 403, "cross_origin")
    assert assert_session(session_get(portal, "alice")) == sid
    assert len(dm.creates_for("alice")) == 1


@pytest.mark.parametrize("headers", [
    lambda s: {"Origin": s.origin},
    lambda s: {"Origin": s.origin, "Sec-Fetch-Site": "same-origin"},
], ids=["origin", "origin+same-origin"])
def test_same_origin_post_is_accepted(portal, dm, headers):
    resp = portal.request("POST", SESSION_PATH, user="alice", headers=headers(portal))
    assert_session(resp)


def test_create_limit_applies_per_customer(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMCreateLimit 2 60"]))
    first = assert_session(same_origin_request(server, "POST", "alice"))
    second = assert_session(same_origin_request(server, "POST", "alice"))
    assert first != second
    resp = same_origin_request(server, "POST", "alice")
    assert_json_error(resp, 429, "rate_limited")
    assert_retry_after(resp, most=60)
    assert len(dm.creates_for("alice")) == 2
    # The limit stops forcing fresh sessions, not using the current one...
    assert assert_session(session_get(server, "alice")) == second
    # ...and it is per customer.
    assert_session(same_origin_request(server, "POST", "bob"))


def test_service_down_is_503_with_retry_after(module_httpd, dm, closed_port):
    server = module_httpd(portal_conf(dm, service_url="http://127.0.0.1:%d" % closed_port),
                          startup_warnings=["PEGADM630"])
    resp = session_get(server, "alice")
    assert_json_error(resp, 503, "upstream_unavailable")
    assert_retry_after(resp)
    resp = same_origin_request(server, "POST", "alice")
    assert_json_error(resp, 503, "upstream_unavailable")
    assert_retry_after(resp)


@pytest.mark.parametrize("mode", [
    "http500", "http401", "non_json", "no_session_id", "bad_session_id", "huge_body", "reset",
])
def test_a_wrong_answer_to_create_is_503_and_nothing_is_cached(portal, dm, mode):
    dm.set_mode(mode, applies_to="create")
    resp = session_get(portal, "alice")
    assert_json_error(resp, 503, "upstream_unavailable")
    assert_retry_after(resp)
    assert dm.state()["faults"], "the module never called the service"
    dm.set_mode("ok")
    sid = assert_session(session_get(portal, "alice"))
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": "alice"}


@pytest.mark.parametrize("mode", ["http500", "reset"])
def test_a_failed_private_data_call_hands_out_nothing(portal, dm, mode):
    dm.set_mode(mode, applies_to="private_data")
    assert_json_error(session_get(portal, "alice"), 503, "upstream_unavailable")
    created = [c["sessionId"] for c in dm.creates_for("alice")]
    assert len(created) == 1, "call 1 should have happened once"
    dm.set_mode("ok")
    sid = assert_session(session_get(portal, "alice"))
    assert sid not in created, "a session without private data was cached"
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": "alice"}


def test_slow_service_hits_the_timeout(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMTimeout 1"]))
    dm.set_mode("delay", applies_to="create", delay_ms=4000)
    started = time.monotonic()
    resp = session_get(server, "alice")
    elapsed = time.monotonic() - started
    assert_json_error(resp, 503, "upstream_unavailable")
    assert elapsed < 3.5, "PegaDMTimeout 1 took %.1fs" % elapsed


def test_untrusted_service_certificate_is_refused(module_httpd, dm):
    """Without PegaDMCAFile the system store applies, which does not know
    the throwaway CA: the module must refuse to talk, not fall back."""
    conf = portal_conf(None, service_url=dm.url)
    server = module_httpd(conf, startup_warnings=["PEGADM630"])
    assert_json_error(session_get(server, "alice"), 503, "upstream_unavailable")
    state = dm.state()
    assert state["creates"] == [] and state["tokens"] == []
    assert state["tls_failures"] >= 1


def test_wrong_secret_is_refused_by_the_service(module_httpd, dm):
    server = module_httpd(portal_conf(dm, secret="not-the-secret-the-service-knows-0123456"))
    assert_json_error(session_get(server, "alice"), 503, "upstream_unavailable")
    reasons = [r["reason"] for r in dm.state()["rejections"]]
    assert any("signature" in r for r in reasons), reasons


def test_private_data_url_is_used(module_httpd, dm, closed_port):
    server = module_httpd(portal_conf(dm, server_extra=[
        "PegaDMPrivateDataURL http://127.0.0.1:%d/private-data" % closed_port]))
    assert_json_error(session_get(server, "alice"), 503, "upstream_unavailable")
    assert len(dm.creates_for("alice")) == 1
    assert dm.state()["private_data"] == []


def test_cache_ttl_expires_sessions(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMCacheTTL 2"]))
    first = assert_session(session_get(server, "alice"))
    assert assert_session(session_get(server, "alice")) == first
    time.sleep(3.2)
    assert assert_session(session_get(server, "alice")) != first
    assert len(dm.creates_for("alice")) == 2


def test_each_widget_has_its_own_sessions(module_httpd, dm):
    other = harness.session_location(
        "/other/session",
        "PegaDMWidgetID %s" % harness.OTHER_WIDGET_ID,
        'PegaDMJWTSecret "%s"' % harness.OTHER_WIDGET_SECRET)
    server = module_httpd(portal_conf(dm, other))
    mine = assert_session(session_get(server, "alice"))
    theirs = assert_session(session_get(server, "alice", path="/other/session"),
                            widget=harness.OTHER_WIDGET_ID)
    assert mine != theirs
    sessions = dm.state()["sessions"]
    assert sessions[mine]["widget"] == harness.WIDGET_ID
    assert sessions[theirs]["widget"] == harness.OTHER_WIDGET_ID


def test_outbound_proxy_is_used(module_httpd, dm, connect_proxy):
    server = module_httpd(portal_conf(dm, server_extra=[
        "PegaDMProxy http://127.0.0.1:%d" % connect_proxy.port]))
    assert_session(session_get(server, "alice"))
    assert connect_proxy.requests, "the module went around the proxy"
    assert all(line.startswith("CONNECT 127.0.0.1:%d " % dm.port)
               for line in connect_proxy.requests), connect_proxy.requests


def test_unreachable_proxy_is_503(module_httpd, dm, closed_port):
    server = module_httpd(portal_conf(dm, server_extra=[
        "PegaDMProxy http://127.0.0.1:%d" % closed_port]), startup_warnings=["PEGADM630"])
    assert_json_error(session_get(server, "alice"), 503, "upstream_unavailable")
    assert dm.state()["creates"] == []


@pytest.mark.parametrize("lifetime", [None, 1, 300])
def test_token_lifetime(module_httpd, dm, lifetime):
    extra = [] if lifetime is None else ["PegaDMTokenLifetime %d" % lifetime]
    server = module_httpd(portal_conf(dm, server_extra=extra))
    sid = assert_session(session_get(server, "alice"))
    state = dm.state()
    claims = [state["creates"][0]["claims"], state["private_data"][0]["claims"]]
    assert [c["exp"] - c["iat"] for c in claims] == [lifetime or 60] * 2, claims
    assert [c["iss"] for c in claims] == [harness.WIDGET_ID, sid]
