"""PegaDMCreateLimit counts in the shared cache, not per process: a customer
spreading POSTs over several child processes gets no more fresh sessions
than the limit allows."""

import pegadm_harness as harness
from pegadm_harness import assert_json_error, assert_retry_after, assert_session, portal_conf


def test_create_limit_holds_across_child_processes(module_httpd, dm):
    server = module_httpd(
        portal_conf(dm, server_extra=["PegaDMCreateLimit 3 60", *harness.PIDS_LOG]),
        users=["alice", "bob"], mpm="prefork")
    conns = [harness.KeptConnection(server) for _ in range(5)]
    headers = {"Origin": server.origin}
    try:
        answers = [conn.request("POST", harness.SESSION_PATH, "alice", headers)
                   for conn in conns]
        # the same children, a second time: still refused
        again = [conn.request("POST", harness.SESSION_PATH, "alice", headers)
                 for conn in conns[:2]]
        bob = conns[4].request("POST", harness.SESSION_PATH, "bob", headers)
    finally:
        for conn in conns:
            conn.close()
    harness.assert_one_child_each(harness.children_serving(server, conns, 8))
    sids = [assert_session(resp) for resp in answers[:3]]
    assert len(set(sids)) == 3
    for resp in answers[3:] + again:
        assert_json_error(resp, 429, "rate_limited")
        assert_retry_after(resp, most=60)
    assert len(dm.creates_for("alice")) == 3
    assert_session(bob)
