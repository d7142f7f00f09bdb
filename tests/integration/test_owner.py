"""GET {session endpoint}?owner: the opaque owner of a login that the
bootstrap's owner check compares with the chat the widget holds. It names
(widget, customer, last logout) by a keyed hash, creates nothing, and
answers the portal's own pages only."""

import time

import pytest

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_protective_headers, assert_session,
                            portal_conf, same_origin_request, session_get)

OWNER_PATH = harness.SESSION_PATH + "?owner"


def owner(server, user, headers=None):
    # from the page's own origin, as the bootstrap asks (a GET ?owner is
    # refused like a POST without it)
    resp = same_origin_request(server, "GET", user, OWNER_PATH, headers=headers)
    assert resp.status == 200, resp
    assert_protective_headers(resp)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    doc = resp.json()
    assert set(doc) == {"owner"} and isinstance(doc["owner"], str) and doc["owner"], doc
    return doc["owner"]


@pytest.fixture
def site(module_httpd, dm):
    return module_httpd(portal_conf(dm))


def test_learning_the_owner_creates_no_session(site, dm):
    before = owner(site, "alice")
    assert owner(site, "alice") == before
    assert dm.state()["creates"] == []
    assert dm.state()["private_data"] == []


def test_the_owner_changes_with_the_user_and_at_logout_only(site, dm):
    first = owner(site, "alice")
    sid = assert_session(session_get(site, "alice"))
    assert owner(site, "alice") == first
    assert assert_session(same_origin_request(site, "POST", "alice")) != sid
    assert owner(site, "alice") == first  # a renewal is the same login
    assert owner(site, "bob") != first
    assert same_origin_request(site, "DELETE", "alice").status == 204
    second = owner(site, "alice")
    assert second != first
    assert same_origin_request(site, "DELETE", "alice").status == 204
    assert owner(site, "alice") not in (first, second)


def test_the_owner_outlives_the_cached_session(module_httpd, dm):
    """A chat longer than PegaDMCacheTTL is not ended on the next page."""
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMCacheTTL 1"]))
    sid = assert_session(session_get(server, "alice"))
    before = owner(server, "alice")
    time.sleep(1.5)
    assert assert_session(session_get(server, "alice")) != sid  # expired
    assert owner(server, "alice") == before


def test_pegadm_forget_changes_the_owner(module_httpd, dm):
    server = module_httpd(portal_conf(dm, harness.location("/logout", "PegaDMForget On")))
    before = owner(server, "alice")
    server.request("GET", "/logout", user="alice")
    assert owner(server, "alice") != before


def test_the_owner_reveals_nothing(site, dm):
    sid = assert_session(session_get(site, "alice"))
    value = owner(site, "alice")
    for secret in ("alice", sid, harness.WIDGET_ID, harness.WIDGET_SECRET):
        assert secret not in value
    assert len(value) >= 22  # at least 128 bits


def test_the_owner_is_keyed_by_the_secret(module_httpd, dm):
    values = []
    for secret in (harness.WIDGET_SECRET, "another-secret-of-the-same-widget-0123456"):
        server = module_httpd(portal_conf(None, service_url=dm.url, ca_file=dm.ca_file,
                                          secret=secret))
        values.append(owner(server, "alice"))
        server.stop()
    assert values[0] != values[1]


@pytest.mark.parametrize("headers", [
    {},  # neither Fetch Metadata nor Origin: not shown to be the portal's page
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://portal.example"},
])
def test_other_sites_learn_no_owner(site, dm, headers):
    resp = site.request("GET", OWNER_PATH, user="alice", headers=headers)
    doc = assert_json_error(resp, 403, "cross_origin")
    assert "owner" not in doc


def test_the_portals_own_pages_learn_it(site, dm):
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                    {"Origin": site.origin},
                    {"Sec-Fetch-Site": "same-origin", "Origin": site.origin}):
        resp = site.request("GET", OWNER_PATH, user="alice", headers=headers)
        assert resp.status == 200, (headers, resp)
        assert "owner" in resp.json(), (headers, resp)


def test_nobody_logged_in_has_no_owner(module_httpd, dm):
    server = module_httpd(portal_conf(dm, harness.session_location(
        "/open/session", "Require all granted", auth=False)))
    assert_json_error(server.request("GET", "/open/session?owner",
                                     headers={"Origin": server.origin}),
                      401, "unauthenticated")


def test_the_post_answer_carries_the_owner_of_its_login(site, dm):
    """The bootstrap records this value with the chat, never one asked for
    later, when another tab may have changed the login."""
    resp = same_origin_request(site, "POST", "alice")
    assert_session(resp)
    doc = resp.json()
    assert set(doc) == {"sessionId", "widgetId", "owner"}, doc
    assert doc["owner"] == owner(site, "alice")
    bob = same_origin_request(site, "POST", "bob").json()
    assert bob["owner"] == owner(site, "bob") != doc["owner"]
    # the GET answer keeps its shape
    assert set(session_get(site, "alice").json()) == {"sessionId", "widgetId"}
