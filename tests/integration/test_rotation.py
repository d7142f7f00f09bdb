"""Rotating the connection's JWT secret with PegaDMJWTSecretNext: the service
switches at run time, new customers keep getting sessions, customers with a
session keep it, every child process learns the switch, one notice is logged;
swapping the two secrets in the configuration afterwards loses no session,
ends no chat (the owner the bootstrap recorded is still the login's) and
keeps every logout cookie working."""

import os

import pegadm_harness as harness
from pegadm_harness import assert_session, same_origin_request, session_get
from test_logout_cookie import BYE, bye, issued_cookie, logout_cookies

OLD = harness.WIDGET_SECRET
NEW = "the-rotated-secret-of-the-connection-0123456789"
STATUS = harness.location("/pegadm/status", "SetHandler pegadm-status", auth=False)


def secret_files(workdir, name, first, nxt):
    paths = []
    for which, secret in (("first", first), ("next", nxt)):
        paths.append(harness.write_file(os.path.join(workdir, "%s-%s" % (name, which)),
                                        secret + "\n", 0o600))
    return paths


LOAD_MEMCACHE = "LoadModule socache_memcache_module %s/mod_socache_memcache.so\n" % (
    harness.APACHE_MODULES)


def rotation_site(dm, first_path, next_path, *extra, cache_port=None):
    """With cache_port, sessions live in memcached (test_cache_reload.py
    rotates with the default shmcb cache)."""
    if cache_port:
        extra = ("PegaDMCache memcache:127.0.0.1:%d" % cache_port, *extra)
    return (LOAD_MEMCACHE if cache_port else "") + (harness.pegadm_conf(dm, secret=None, extra=[
        'PegaDMJWTSecretFile "%s"' % first_path,
        'PegaDMJWTSecretNextFile "%s"' % next_path,
        "PegaDMBreakerThreshold 0", *extra])
        + harness.session_location() + STATUS)


def rejections(dm):
    return [r for r in dm.state()["rejections"] if "signature" in r["reason"]]


def notices(server, number):
    return [line for line in server.error_log().splitlines() if number in line]


def sessions_on_children(server, users):
    conns = [harness.KeptConnection(server) for _ in users]
    try:
        sids = [assert_session(conn.request("GET", harness.SESSION_PATH, user))
                for conn, user in zip(conns, users)]
        pids = harness.children_serving(server, conns, len(users))
    finally:
        for conn in conns:
            conn.close()
    harness.assert_one_child_each(pids)
    return sids


def test_the_service_switches_to_the_next_secret(module_httpd, dm, workdir, memcached):
    first, nxt = secret_files(workdir, "rotation", OLD, NEW)
    users = ["alice", "bob", "c1", "c2", "c3", "dave"]
    server = module_httpd(rotation_site(dm, first, nxt, *harness.PIDS_LOG,
                                        cache_port=memcached.port),
                          users=users, mpm="prefork")
    alice = assert_session(session_get(server, "alice"))
    assert rejections(dm) == []

    dm.set_secret(NEW)
    bob = assert_session(session_get(server, "bob"))
    assert len(rejections(dm)) == 1, "one refused token, then the next secret"
    assert assert_session(session_get(server, "alice")) == alice
    # the other children know: no more refused tokens, wherever a customer lands
    sessions_on_children(server, ["c1", "c2", "c3"])
    assert assert_session(same_origin_request(server, "POST", "dave")) not in (alice, bob)
    assert len(rejections(dm)) == 1
    assert [len(dm.creates_for(u)) for u in users] == [1, 1, 1, 1, 1, 1]
    assert dm.state()["sessions"][bob]["privateData"] == {"customerId": "bob"}
    assert len(notices(server, "PEGADM620")) == 1, server.error_log()
    assert "PEGADM621" not in server.error_log()
    doc = server.request("GET", "/pegadm/status").json()
    assert doc["widgets"][0]["secretInUse"] == "next"
    assert doc["widgets"][0]["creates"]["http_error"] == 1

    # The administrator swaps the two: every cached session survives.
    secret_files(workdir, "rotation", NEW, OLD)
    harness.graceful_restart(server)
    assert assert_session(session_get(server, "alice")) == alice
    assert assert_session(session_get(server, "bob")) == bob
    assert_session(session_get(server, "dave"))
    eve = assert_session(same_origin_request(server, "POST", "alice"))
    assert eve != alice
    assert len(rejections(dm)) == 1, "the swapped-in secret is the one in use"
    assert [len(dm.creates_for(u)) for u in ("alice", "bob", "dave")] == [2, 1, 1]
    server.stop()
    text = server.error_log() + server.access_log()
    assert OLD not in text and NEW not in text


def test_a_logout_after_the_swap_forgets_the_session(module_httpd, dm, workdir, memcached):
    first, nxt = secret_files(workdir, "swap-forget", OLD, NEW)
    server = module_httpd(rotation_site(dm, first, nxt, cache_port=memcached.port))
    alice = assert_session(session_get(server, "alice"))
    secret_files(workdir, "swap-forget", NEW, OLD)
    dm.set_secret(NEW)
    harness.graceful_restart(server)
    assert same_origin_request(server, "DELETE", "alice").status == 204
    assert len(dm.creates_for("alice")) == 1
    assert assert_session(session_get(server, "alice")) != alice


def test_without_a_next_secret_a_switch_fails_as_before(module_httpd, dm):
    server = module_httpd(harness.portal_conf(dm, server_extra=["PegaDMBreakerThreshold 0"]))
    dm.set_secret(NEW)
    assert session_get(server, "alice").status == 503
    assert len(rejections(dm)) == 1
    assert "PEGADM620" not in server.error_log()


def test_next_and_next_file_in_one_scope_are_refused(config_test, workdir):
    _, nxt = secret_files(workdir, "twice", OLD, NEW)
    result = config_test(harness.pegadm_conf(extra=[
        'PegaDMJWTSecretNext "%s"' % NEW, 'PegaDMJWTSecretNextFile "%s"' % nxt]))
    code, output = result
    assert code != 0, output
    assert "PegaDMJWTSecretNextFile: a secret is already set" in output, output


def owner_answer(server, user):
    resp = same_origin_request(server, "GET", user, harness.SESSION_PATH + "?owner")
    assert resp.status == 200, resp
    return resp.json()


def test_a_rotation_keeps_the_owner_and_the_logout_cookie(module_httpd, dm, workdir):
    first, nxt = secret_files(workdir, "keep-owner", OLD, NEW)
    server = module_httpd(rotation_site(dm, first, nxt) + BYE)
    # step 1: the next secret is configured; the chat is handed out
    handed = same_origin_request(server, "POST", "alice")
    alice = assert_session(handed)
    recorded = handed.json()["owner"]
    cookie = issued_cookie(handed)
    before = owner_answer(server, "alice")
    assert before["owner"] == recorded and before["previous"] != recorded
    # step 2: Pega signs with the next secret now: nothing the browser holds changes
    dm.set_secret(NEW)
    assert_session(session_get(server, "bob"))
    assert owner_answer(server, "alice") == before
    # step 3: the two are swapped; the recorded owner is the login's previous one
    secret_files(workdir, "keep-owner", NEW, OLD)
    harness.graceful_restart(server)
    after = owner_answer(server, "alice")
    assert after["previous"] == recorded, (before, after)
    assert after["owner"] == before["previous"]
    # the cookie sealed before the swap is sealed anew at the next hand-out...
    again = session_get(server, "alice", headers={"Cookie": cookie})
    assert assert_session(again) == alice
    renewed = issued_cookie(again)
    assert renewed != cookie
    # ...and until then still drops the session where nobody is logged in
    resp = bye(server, cookie)
    assert resp.status in (200, 404), resp
    assert [v for v in logout_cookies(resp) if "Max-Age=0" in v], resp.headers
    assert assert_session(session_get(server, "alice")) != alice
    assert owner_answer(server, "alice")["owner"] != after["owner"]  # a logout is a logout
    # step 4: the old secret is gone; the cookie sealed anew still works
    server.stop()
    server = module_httpd(harness.pegadm_conf(dm, secret=None, extra=[
        'PegaDMJWTSecretFile "%s"' % first, "PegaDMBreakerThreshold 0"])
        + harness.session_location() + BYE)
    second = assert_session(session_get(server, "alice"))
    assert bye(server, renewed).status in (200, 404)
    assert assert_session(session_get(server, "alice")) != second


def test_a_customers_refusal_once_the_accepted_secret_is_known_is_not_retried(
        module_httpd, dm, workdir):
    """A 403 to one customer after the switch is his, not the secret's: one
    call. (The other secret is tried at most once per 10 s per child: one
    kept connection keeps both requests on the child that saw the switch.)"""
    first, nxt = secret_files(workdir, "known", OLD, NEW)
    server = module_httpd(rotation_site(dm, first, nxt), users=["alice", "mallory"])
    dm.set_secret(NEW)
    conn = harness.KeptConnection(server)
    try:
        # the switch: NEW is accepted now
        assert_session(conn.request("GET", harness.SESSION_PATH, "alice"))
        dm.refuse_customer("mallory", 403, applies_to="create")
        before = len(dm.state()["rejections"])
        harness.assert_json_error(conn.request("GET", harness.SESSION_PATH, "mallory"), 503,
                                  "upstream_unavailable")
    finally:
        conn.close()
    calls = dm.state()["rejections"][before:]
    assert len(calls) == 1, calls
