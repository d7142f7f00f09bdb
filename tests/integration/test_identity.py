"""Customer identity: what reaches Pega is exactly the user, whatever the
name contains, and one user's session is never another's."""

import os

import pytest

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_session, location, parse_vars, portal_conf,
                             session_get)

NAME_256 = "u" * 250 + "ééé"
NAMES = {
    "quotes": 'o\'brien "the quoted"',
    "backslashes": "back\\slash\\\\ \\u0041 \\\"",
    "utf-8": "Zoë Ågren 東京 🙂",
    "html": "</script><script>alert(1)</script>",
    "expression syntax": "%{REMOTE_USER} ${HOME} %{HTTP_HOST} $1",
    "json": 'mallory", "customerId" = "admin',
    "256 bytes": NAME_256,
}
TOO_LONG = {"257 bytes": NAME_256 + "u", "300 bytes": "x" * 300}
CONTROL = {"tab": "tab\there", "escape": "esc\x1b[31mred"}

assert len(NAME_256.encode()) == 256


@pytest.fixture
def site(module_httpd, dm):
    users = ["alice", "bob", *NAMES.values(), *TOO_LONG.values(), *CONTROL.values()]
    return module_httpd(portal_conf(dm, location("/eager/", "PegaDM On")), users=users)


@pytest.mark.parametrize("case", sorted(NAMES))
def test_customer_id_arrives_byte_exact(site, dm, case):
    user = NAMES[case]
    sid = assert_session(session_get(site, user))
    creates = dm.creates_for(user)
    assert [c["sessionId"] for c in creates] == [sid], dm.state()["creates"]
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": user}
    assert assert_session(session_get(site, user)) == sid


@pytest.mark.parametrize("case", sorted(TOO_LONG) + sorted(CONTROL))
def test_unusable_names_are_unauthenticated(site, dm, case):
    user = {**TOO_LONG, **CONTROL}[case]
    assert_json_error(session_get(site, user), 401, "unauthenticated")
    resp = site.request("GET", "/eager/session.shtml", user=user)
    assert resp.status == 200, resp
    assert parse_vars(resp.body)["SID"] == b"(none)"
    assert dm.state()["creates"] == []


def test_two_users_never_share_and_one_user_shares_one(site, dm):
    alice = {assert_session(session_get(site, "alice")) for _ in range(3)}
    bob = {assert_session(session_get(site, "bob")) for _ in range(3)}
    assert len(alice) == 1 and len(bob) == 1 and alice != bob
    sessions = dm.state()["sessions"]
    assert sessions[alice.pop()]["customerId"] == "alice"
    assert sessions[bob.pop()]["customerId"] == "bob"
    assert len(dm.state()["creates"]) == 2


def test_configured_private_data_replaces_the_default(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=[
        'PegaDMPrivateData userName "%{REMOTE_USER}"',
        'PegaDMPrivateData authenticated "true"',
        'PegaDMPrivateData via "portal %{REQUEST_METHOD}"',
    ]))
    sid = assert_session(session_get(server, "alice"))
    assert dm.state()["sessions"][sid]["privateData"] == {
        "userName": "alice", "authenticated": "true", "via": "portal GET"}


def test_private_data_values_are_not_reinterpreted(module_httpd, dm):
    user = NAMES["json"]
    server = module_httpd(portal_conf(dm, server_extra=[
        'PegaDMPrivateData userName "%{REMOTE_USER}"']), users=[user])
    sid = assert_session(session_get(server, user))
    assert dm.state()["sessions"][sid]["privateData"] == {"userName": user}


def test_customer_id_expression(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=[
        'PegaDMCustomerID "portal:%{REMOTE_USER}"']))
    sid = assert_session(session_get(server, "alice"))
    assert [c["sessionId"] for c in dm.creates_for("portal:alice")] == [sid]
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": "portal:alice"}


def test_secret_from_a_file_is_trimmed(module_httpd, dm, workdir):
    path = harness.write_file(
        os.path.join(workdir, "secret-with-space"),
        "  \n%s\n\n" % harness.WIDGET_SECRET, 0o600)
    server = module_httpd(portal_conf(dm, secret=None, server_extra=[
        'PegaDMJWTSecretFile "%s"' % path]))
    assert_session(session_get(server, "alice"))
    assert dm.state()["rejections"] == []


def test_secret_from_an_environment_variable(module_httpd, dm):
    server = module_httpd(portal_conf(dm, secret="${PEGADM_TEST_SECRET}"),
                          env={"PEGADM_TEST_SECRET": harness.WIDGET_SECRET})
    assert_session(session_get(server, "alice"))
    assert dm.state()["rejections"] == []
