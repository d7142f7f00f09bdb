"""Concurrent first requests of one customer: one upstream create, one
session for all, across the processes and threads of every MPM."""

import functools

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_session, portal_conf, run_together, session_get

CLIENTS = 40


@pytest.mark.parametrize("mpm", harness.MPMS)
def test_concurrent_first_requests_make_one_session(module_httpd, dm, mpm):
    user = "concurrent-%s" % mpm
    # all of them may wait (the default bound would refuse some: test_security.py)
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMCreateWaiters %d" % CLIENTS]),
                          users=[user], mpm=mpm)
    # A slow create widens the window in which the others arrive.
    dm.set_mode("delay", applies_to="create", delay_ms=500)
    results = run_together([lambda: session_get(server, user)] * CLIENTS)
    sids = {assert_session(r) if isinstance(r, harness.Response) else r for r in results}
    assert len(sids) == 1, sids
    assert [c["sessionId"] for c in dm.creates_for(user)] == list(sids)


def test_concurrent_users_get_their_own_sessions(module_httpd, dm):
    users = ["user-%d" % i for i in range(8)]
    server = module_httpd(portal_conf(dm), users=users)
    dm.set_mode("delay", applies_to="create", delay_ms=200)
    results = {}
    for user, resp in zip(users * 3, run_together(
            [functools.partial(session_get, server, user) for user in users * 3])):
        sid = assert_session(resp)
        assert results.setdefault(user, sid) == sid, (user, results[user], sid)
    assert sorted(results) == sorted(users)
    assert len(set(results.values())) == len(users)
    sessions = dm.state()["sessions"]
    for user, sid in results.items():
        assert sessions[sid]["customerId"] == user
        assert len(dm.creates_for(user)) == 1
