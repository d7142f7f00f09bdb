"""Several httpd nodes sharing a real Redis or memcached: one customer has one
session whichever node answers, a node restart loses nothing, nodes
wait for each other's create, and an unreachable cache server keeps the
portal up without minting sessions, logged once, until it is back."""

import functools
import threading
import time

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_retry_after, assert_session,
                            cache_node_conf, parse_vars, run_together, session_get)

EAGER_PAGE = "/eager/session.shtml"
USERS = ("alice", "bob", "carol", "dave")

# One child process, so that "logged once a minute per process" means once.
ONE_PROCESS = "ServerLimit 1\nStartServers 1\nThreadsPerChild 25\nMaxRequestWorkers 25\n"


def node_conf(dm, cache_server, extra=""):
    # 40 clients of one customer may all wait (PegaDMCreateWaiters bounds that)
    return cache_node_conf(dm, cache_server, extra, server_extra=["PegaDMCreateWaiters 40"])


def eager_sid(node, user):
    page = node.request("GET", EAGER_PAGE, user=user)
    assert page.status == 200, page
    return parse_vars(page.body)["SID"].decode()


def gets_together(jobs):
    """Run (node, user) GETs released together; return their session IDs."""
    results = run_together([functools.partial(session_get, node, user) for node, user in jobs])
    return [assert_session(r) if isinstance(r, harness.Response) else r for r in results]


def test_one_customer_has_one_session_on_every_node(module_httpd, dm, cache_server):
    nodes = [module_httpd(node_conf(dm, cache_server), users=USERS, mpm=mpm)
             for mpm in harness.MPMS]
    alice = assert_session(session_get(nodes[0], "alice"))
    bob = assert_session(session_get(nodes[2], "bob"))
    assert alice != bob
    for node in nodes:
        assert assert_session(session_get(node, "alice")) == alice
        assert assert_session(session_get(node, "bob")) == bob
        assert eager_sid(node, "alice") == alice
    assert len(dm.creates_for("alice")) == 1
    assert len(dm.creates_for("bob")) == 1


def test_restarting_a_node_loses_no_session(module_httpd, dm, cache_server):
    first = module_httpd(node_conf(dm, cache_server), users=USERS)
    second = module_httpd(node_conf(dm, cache_server), users=USERS, mpm="prefork")
    sid = assert_session(session_get(first, "alice"))
    first.stop()
    assert assert_session(session_get(second, "alice")) == sid
    restarted = module_httpd(node_conf(dm, cache_server), users=USERS)
    assert assert_session(session_get(restarted, "alice")) == sid
    assert eager_sid(restarted, "alice") == sid
    assert len(dm.creates_for("alice")) == 1


def test_a_node_waits_for_another_nodes_create(module_httpd, dm, cache_server):
    nodes = [module_httpd(node_conf(dm, cache_server), users=USERS) for _ in range(2)]
    dm.set_mode("delay", applies_to="create", delay_ms=700)
    first = []
    starter = threading.Thread(target=lambda: first.append(session_get(nodes[0], "carol")))
    starter.start()
    # The create has reached the service: its pending mark is in the cache.
    harness.wait_for(lambda: dm.state()["tokens"], 10, what="the first node's create")
    sids = gets_together([(nodes[i % 2], "carol") for i in range(39)])
    starter.join(30)
    sids.append(assert_session(first[0]))
    assert set(sids) == {dm.creates_for("carol")[0]["sessionId"]}
    assert len(dm.creates_for("carol")) == 1


def test_simultaneous_first_requests_on_two_nodes_make_one_session(module_httpd, dm, cache_server):
    """The create is claimed on the cache server itself: two nodes racing on
    one customer's first requests make one create and hand out one ID."""
    nodes = [module_httpd(node_conf(dm, cache_server), users=USERS) for _ in range(2)]
    dm.set_mode("delay", applies_to="create", delay_ms=500)
    handed_out = set(gets_together([(nodes[i % 2], "dave") for i in range(40)]))
    created = {c["sessionId"] for c in dm.creates_for("dave")}
    assert len(created) == 1, created
    assert handed_out == created
    held = {assert_session(session_get(node, "dave")) for node in nodes}
    assert held == created, (held, created)


def test_create_limit_holds_across_nodes(module_httpd, dm, cache_server):
    """PegaDMCreateLimit counts in the shared cache: a customer spreading
    POSTs over three nodes gets no more fresh sessions than the limit."""
    conf = node_conf(dm, cache_server, "PegaDMCreateLimit 3 60\n")
    nodes = [module_httpd(conf, users=USERS, mpm=mpm) for mpm in harness.MPMS]
    answers = [harness.same_origin_request(nodes[i % 3], "POST", "alice") for i in range(6)]
    sids = [assert_session(resp) for resp in answers[:3]]
    assert len(set(sids)) == 3
    for resp in answers[3:]:
        assert_json_error(resp, 429, "rate_limited")
        assert_retry_after(resp, most=60)
    assert len(dm.creates_for("alice")) == 3
    # the count is the customer's own: bob on the same nodes is not limited
    assert assert_session(harness.same_origin_request(nodes[1], "POST", "bob"))
    # and every node hands out alice's last fresh session, once another node's
    # change can no longer go unseen (PegaDMLocalCacheMaxAge, 1 s: the node that
    # made an earlier one keeps a copy of it that long)
    time.sleep(1.2)
    assert {assert_session(session_get(node, "alice")) for node in nodes} == {sids[-1]}


def store_failure_lines(node):
    return [line for line in node.error_log().splitlines() if "PEGADM033" in line]


def test_cache_outage_keeps_the_portal_up_and_recovers(module_httpd, dm, cache_server):
    node = module_httpd(node_conf(dm, cache_server, ONE_PROCESS), users=USERS)
    sid = assert_session(session_get(node, "alice"))
    creates = len(dm.state()["creates"])
    cache_server.stop()
    # the child that made alice's session keeps a copy, reused for at most
    # PegaDMLocalCacheMaxAge (1 s) with a shared cache: past it, the outage shows
    time.sleep(1.2)
    for _ in range(10):
        for user in ("alice", "bob"):
            resp = session_get(node, user)
            assert_json_error(resp, 503, "upstream_unavailable")
            assert_retry_after(resp)
        assert eager_sid(node, "bob") == "(none)"
    assert len(dm.state()["creates"]) == creates, "minted a session it could not store"
    assert len(store_failure_lines(node)) == 1, store_failure_lines(node)
    assert cache_server.kind in store_failure_lines(node)[0]

    cache_server.start()  # empty: the cache servers run without persistence

    def session_again():
        resp = session_get(node, "alice")
        return resp.status == 200 and assert_session(resp)

    new_sid = harness.wait_for(session_again, 30, 0.5, "the cache to be used again")
    assert new_sid != sid
    assert assert_session(session_get(node, "alice")) == new_sid
    assert eager_sid(node, "alice") == new_sid
    assert len(store_failure_lines(node)) == 1
