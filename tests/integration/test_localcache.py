"""The per-process read cache in front of the session cache: a change made
by any child (POST, DELETE) is seen by the very next request on every other
child of the node; with a cache shared by several nodes, another node's
change goes unseen for at most PegaDMLocalCacheMaxAge; lookups it answers
do not reach the cache server."""

import time

import pytest

import pegadm_harness as harness
from pegadm_harness import (assert_session, cache_node_conf, location, portal_conf, session_get,
                            sessions_at_once)

SHARED_STALENESS_MARGIN = 1.5  # seconds on top of the bound: the machine may be busy


def kept_on_two_children(server, tries=16):
    """Two kept connections served by different child processes."""
    conns = []
    try:
        while len(conns) < tries:
            conns.append(harness.KeptConnection(server))
            pids = harness.children_serving(server, conns, len(conns), path="/index.html")
            by_child = {}
            for conn in conns:
                by_child.setdefault(next(iter(pids[conn.tag])), conn)
            if len(by_child) >= 2:
                first, second = list(by_child.values())[:2]
                for conn in conns:
                    if conn not in (first, second):
                        conn.close()
                return first, second
        raise AssertionError("every connection went to one child: %r" % pids)
    except BaseException:
        for conn in conns:
            conn.close()
        raise


def get_sid(conn, user="alice"):
    return assert_session(conn.request("GET", harness.SESSION_PATH, user))


def change(conn, method, server, user="alice"):
    resp = conn.request(method, harness.SESSION_PATH, user, {"Origin": server.origin})
    assert resp.status in (200, 204), resp
    return resp


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_a_change_on_one_child_is_seen_by_the_next_request_on_another(module_httpd, dm, mpm):
    # event: a listener per child (SO_REUSEPORT), so that the kernel spreads
    # connections over the children instead of one child taking them all
    spread = ["ListenCoresBucketsRatio 1"] if mpm == "event" else []
    server = module_httpd(portal_conf(dm, server_extra=[*harness.PIDS_LOG, *spread]), mpm=mpm)
    writer, reader = kept_on_two_children(server)
    try:
        first = get_sid(writer)
        for _ in range(3):  # the reader's own copy, used from the second on
            assert get_sid(reader) == first
        renewed = assert_session(change(writer, "POST", server))
        assert renewed != first
        assert get_sid(reader) == renewed
        assert get_sid(reader) == renewed
        change(writer, "DELETE", server)
        after_delete = get_sid(reader)
        assert after_delete not in (first, renewed)
        assert get_sid(writer) == after_delete
    finally:
        writer.close()
        reader.close()
    assert [c["sessionId"] for c in dm.creates_for("alice")] == [first, renewed, after_delete]


def fake_memcache_conf(dm, memcached, extra=""):
    return ("LoadModule socache_memcache_module %s/mod_socache_memcache.so\n"
            % harness.APACHE_MODULES
            + portal_conf(dm, location("/eager/", "PegaDM On"), extra,
                          server_extra=["PegaDMCache memcache:127.0.0.1:%d" % memcached.port]))


def cache_reads(memcached):
    return sum(1 for c in memcached.commands if c in ("get", "gets"))


# one lookup fills the local copy: the session entry and the forgotten entry
# that may overrule it (a session put back after a logout)
@pytest.mark.parametrize("directive, most", [("", 2), ("PegaDMLocalCache 0", None)])
def test_cached_lookups_do_not_reach_the_cache_server(module_httpd, dm, memcached, directive,
                                                      most):
    server = module_httpd(fake_memcache_conf(dm, memcached, directive))
    conn = harness.KeptConnection(server)
    try:
        sid = get_sid(conn)
        before = cache_reads(memcached)
        for _ in range(10):
            assert get_sid(conn) == sid
        reads = cache_reads(memcached) - before
    finally:
        conn.close()
    if most is None:
        assert reads >= 10, "PegaDMLocalCache 0 still answered from a local copy"
    else:
        assert reads <= most, reads


def stale_for(reader, old, new, limit):
    """Seconds the reader kept answering `old` after the change, polling."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        sid = get_sid(reader)
        if sid == new:
            return time.monotonic() - began
        assert sid == old, (sid, old, new)
        time.sleep(0.05)
    raise AssertionError("another node's change still unseen after %.1fs" % limit)


@pytest.mark.parametrize("max_age", [None, 0.25, 0])
def test_another_nodes_change_is_seen_within_the_bound(module_httpd, dm, cache_server, max_age):
    extra = "MaxKeepAliveRequests 0\n"  # the reader polls on one connection
    if max_age is not None:
        extra += "PegaDMLocalCacheMaxAge %dms\n" % (max_age * 1000)
    bound = 1.0 if max_age is None else max_age
    reader_node = module_httpd(cache_node_conf(dm, cache_server, extra))
    writer_node = module_httpd(cache_node_conf(dm, cache_server, extra), mpm="prefork")
    reader = harness.KeptConnection(reader_node)
    try:
        first = get_sid(reader)
        for _ in range(3):
            assert get_sid(reader) == first
        renewed = assert_session(harness.same_origin_request(writer_node, "POST", "alice"))
        if max_age == 0:
            assert get_sid(reader) == renewed
        else:
            assert stale_for(reader, first, renewed, bound + 5) < bound + SHARED_STALENESS_MARGIN
    finally:
        reader.close()


def test_reads_without_the_node_mutex_keep_one_session_per_customer(module_httpd, dm,
                                                                   cache_server):
    """PegaDMCacheReadLock Off: memcache and redis reads skip the node's
    mutex (the providers are safe for concurrent use); creates still take
    it, so concurrent first requests still make one create each."""
    users = ["u%d" % i for i in range(5)]
    node = module_httpd(cache_node_conf(dm, cache_server, "PegaDMCacheReadLock Off\n"
                                        "PegaDMLocalCache 0\n"), users=users)
    for user, sids in sessions_at_once(node, users).items():
        assert len(set(sids)) == 1, sids
        assert len(dm.creates_for(user)) == 1


@pytest.mark.parametrize("conf, count", [
    ("", "at most 2 at once per child process, so each child process may hold up to 2 "),
    ("PegaDMCacheReadLock Off\nPegaDMCacheReadsPerChild 0\n",
     "with no bound per child process (one per thread), so each child process may hold up "
     "to 25 "),
])
def test_reads_without_the_node_mutex_are_told_at_start_up(module_httpd, dm, cache_server,
                                                            conf, count):
    """Each child may then hold as many connections to the cache server as
    it reads at once: a notice says so, once, with the count (event: 25
    threads); with the node's mutex there is none."""
    node = module_httpd(cache_node_conf(dm, cache_server, conf))
    notices = [line for line in node.error_log().splitlines() if "PEGADM841" in line]
    assert len(notices) == 1, node.error_log()
    assert "[pegadm:notice]" in notices[0] and cache_server.kind in notices[0]
    assert count in notices[0], notices[0]
    locked = module_httpd(cache_node_conf(dm, cache_server, "PegaDMCacheReadLock On\n"))
    assert "PEGADM841" not in locked.error_log()


def test_reads_without_the_node_mutex_are_ignored_for_shmcb_with_a_warning(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMCacheReadLock Off"]),
                          startup_warnings=["PEGADM840"])
    warnings = [line for line in server.error_log().splitlines() if "PEGADM840" in line]
    assert len(warnings) == 1, server.error_log()
    assert "[pegadm:warn]" in warnings[0] and "shmcb" in warnings[0], warnings[0]
    assert "PEGADM841" not in server.error_log()
    sid = assert_session(session_get(server, "alice"))
    assert assert_session(session_get(server, "alice")) == sid
