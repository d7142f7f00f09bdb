"""A shared cache (memcached here) is readable by whoever reaches it: it
must hold neither customer IDs nor usable session IDs, tampering must be
detected, and an unreachable cache must not turn into unstored sessions."""

import base64

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_session, location, parse_vars, portal_conf,
                             session_get)

LOAD_MEMCACHE = "LoadModule socache_memcache_module %s/mod_socache_memcache.so\n" % (
    harness.APACHE_MODULES)
ODD_USER = 'Zoë "cache" 東京'


def shared_cache_site(dm, port, *blocks, extra=()):
    return LOAD_MEMCACHE + portal_conf(
        dm, location("/eager/", "PegaDM On"), *blocks,
        server_extra=["PegaDMCache memcache:127.0.0.1:%d" % port, *extra])


def encodings(text):
    """Ways a value could sit in a cache entry without being encrypted."""
    raw = harness.to_bytes(text)
    return {raw, raw.hex().encode(), raw.hex().upper().encode(),
            base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"=")}


def test_cache_entries_reveal_no_customer_and_no_session(module_httpd, dm, memcached):
    server = module_httpd(shared_cache_site(dm, memcached.port),
                          users=["alice", ODD_USER])
    sids = [assert_session(session_get(server, u)) for u in ("alice", ODD_USER)]
    items = memcached.snapshot()
    assert len(items) >= 2, "the module did not use the configured cache"
    for key, (_, _, value) in items.items():
        for secret in [*encodings("alice"), *encodings(ODD_USER),
                       *(e for sid in sids for e in encodings(sid))]:
            assert secret not in key, (key, secret)
            assert secret not in value, (value, secret)


def test_cache_is_shared_between_servers_with_the_same_secret(module_httpd, dm, memcached):
    first = module_httpd(shared_cache_site(dm, memcached.port))
    sid = assert_session(session_get(first, "alice"))
    second = module_httpd(shared_cache_site(dm, memcached.port))
    assert assert_session(session_get(second, "alice")) == sid
    assert len(dm.creates_for("alice")) == 1


def test_tampered_entries_are_discarded(module_httpd, dm, memcached):
    # the tampering is another writer's change: read at once, not after the
    # creating child's copy has aged (PegaDMLocalCacheMaxAge)
    server = module_httpd(shared_cache_site(dm, memcached.port,
                                            extra=["PegaDMLocalCacheMaxAge 0"]))
    first = assert_session(session_get(server, "alice"))
    memcached.tamper_all()
    second = assert_session(session_get(server, "alice"))
    assert second != first
    assert [c["sessionId"] for c in dm.creates_for("alice")] == [first, second]


def test_unreachable_cache_is_not_a_miss(module_httpd, dm, closed_port):
    # the preflight says so at start-up (PEGADM901), and httpd starts
    server = module_httpd(shared_cache_site(dm, closed_port), startup_warnings=["PEGADM901"])
    resp = session_get(server, "alice")
    assert_json_error(resp, 503, "upstream_unavailable")
    page = server.request("GET", "/eager/session.shtml", user="alice")
    assert page.status == 200, page
    assert parse_vars(page.body)["SID"] == b"(none)"
    assert dm.state()["creates"] == [], "a session was minted that could not be stored"
    harness.wait_for(lambda: harness.pegadm_log_lines(server.error_log()), 5,
                     what="the cache failure in the error log")
