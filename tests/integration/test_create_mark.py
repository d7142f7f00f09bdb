"""Exactly one create per customer across nodes: the pending mark is taken
atomically on the shared cache server itself (memcached "add", Redis INCR),
so that first requests reaching several nodes at the same instant make one
create and every node hands out the same ID; a failed create leaves no
mark behind, and a dead node's mark lapses."""

import functools
import os
import signal
import threading
import time

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_retry_after, assert_session,
                            cache_node_conf, run_together, session_get)

CUSTOMERS = ["customer-%03d" % i for i in range(100)]
CUSTOMERS_AT_ONCE = 4  # customers raced at a time, each on all three nodes


def race(nodes, customers):
    """Each customer's first request to every node, all released together;
    returns {customer: [response per node]}."""
    answers = iter(run_together([functools.partial(session_get, node, customer)
                                 for customer in customers for node in nodes]))
    return {customer: [next(answers) for _ in nodes] for customer in customers}


def test_simultaneous_first_requests_on_three_nodes_make_one_create(module_httpd, dm, cache_server):
    nodes = [module_httpd(cache_node_conf(dm, cache_server), users=CUSTOMERS, mpm=mpm)
             for mpm in harness.MPMS]
    handed_out = {}
    for start in range(0, len(CUSTOMERS), CUSTOMERS_AT_ONCE):
        for customer, answers in race(nodes, CUSTOMERS[start:start + CUSTOMERS_AT_ONCE]).items():
            sids = {assert_session(resp) for resp in answers}
            assert len(sids) == 1, (customer, sids)
            handed_out[customer] = sids.pop()
    creates = {}
    for create in dm.state()["creates"]:
        user = bytes.fromhex(create["customerIdUtf8Hex"]).decode()
        creates.setdefault(user, []).append(create["sessionId"])
    twice = {c: s for c, s in creates.items() if len(s) != 1}
    assert not twice, "customers with more than one create: %r" % twice
    assert {c: s[0] for c, s in creates.items()} == handed_out


def test_a_failed_create_leaves_no_mark(module_httpd, dm, cache_server):
    first, second = (module_httpd(cache_node_conf(dm, cache_server), users=CUSTOMERS[:2], mpm=mpm)
                     for mpm in ("event", "prefork"))
    dm.set_mode("http500", applies_to="create", count=1)
    assert_json_error(session_get(first, CUSTOMERS[0]), 503, "upstream_unavailable")
    # no mark left: the other node creates at once instead of waiting
    began = time.monotonic()
    sid = assert_session(session_get(second, CUSTOMERS[0]))
    assert time.monotonic() - began < 2.0
    assert [c["sessionId"] for c in dm.creates_for(CUSTOMERS[0])][-1:] == [sid]


def test_a_forgotten_session_is_created_again_at_once(module_httpd, dm, cache_server):
    """The mark is released once the session is stored: a first request
    after DELETE is not held up by the create before it."""
    first, second = (module_httpd(cache_node_conf(dm, cache_server), users=CUSTOMERS[:2], mpm=mpm)
                     for mpm in ("worker", "event"))
    sid = assert_session(session_get(first, CUSTOMERS[1]))
    resp = harness.same_origin_request(first, "DELETE", CUSTOMERS[1])
    assert resp.status in (200, 204), resp
    began = time.monotonic()
    again = assert_session(session_get(second, CUSTOMERS[1]))
    assert time.monotonic() - began < 2.0
    assert again != sid
    assert len(dm.creates_for(CUSTOMERS[1])) == 2


def test_a_dead_nodes_mark_lapses(module_httpd, dm, cache_server):
    """A node killed during its create holds the mark: the others wait
    (bounded, then 503 with Retry-After) until it lapses, then create."""
    conf = cache_node_conf(dm, cache_server, "PegaDMTimeout 3\n")  # waits 7 s, a mark lasts 8 s
    doomed, survivor = (module_httpd(conf, users=CUSTOMERS[:1], mpm=mpm)
                        for mpm in ("event", "worker"))
    dm.set_mode("delay", applies_to="create", delay_ms=10000)
    def doomed_request():
        try:
            session_get(doomed, CUSTOMERS[0])
        except OSError:  # its node is killed under it
            pass

    threading.Thread(target=doomed_request, daemon=True).start()
    harness.wait_for(lambda: dm.state()["tokens"], 10, what="the doomed node's create")
    os.killpg(doomed.proc.pid, signal.SIGKILL)  # dies holding the mark
    doomed.proc.wait(10)
    dm.set_mode("ok")
    held = session_get(survivor, CUSTOMERS[0])
    assert_json_error(held, 503, "upstream_unavailable")
    assert_retry_after(held)

    def created():
        resp = session_get(survivor, CUSTOMERS[0])
        return resp.status == 200 and assert_session(resp)

    sid = harness.wait_for(created, 15, 0.5, "the dead node's mark to lapse")
    assert [c["sessionId"] for c in dm.creates_for(CUSTOMERS[0])][-1] == sid
