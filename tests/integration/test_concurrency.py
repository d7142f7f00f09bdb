"""Concurrent first requests of one customer: one upstream create, one
session for all, across the processes and threads of every MPM."""

import threading

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_session, portal_conf, session_get

CLIENTS = 40


def concurrent_gets(server, user, count):
    """Fire `count` GETs released together by a barrier; return responses."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def client(index):
        barrier.wait(timeout=10)
        try:
            results[index] = session_get(server, user)
        except Exception as err:  # reported below with the others
            results[index] = err

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "clients still waiting after 60s"
    return results


@pytest.mark.parametrize("mpm", harness.MPMS)
def test_concurrent_first_requests_make_one_session(module_httpd, dm, mpm):
    user = "concurrent-%s" % mpm
    # all of them may wait (the default bound would refuse some: test_security.py)
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMCreateWaiters %d" % CLIENTS]),
                          users=[user], mpm=mpm)
    # A slow create widens the window in which the others arrive.
    dm.set_mode("delay", applies_to="create", delay_ms=500)
    results = concurrent_gets(server, user, CLIENTS)
    sids = {assert_session(r) if isinstance(r, harness.Response) else r for r in results}
    assert len(sids) == 1, sids
    assert [c["sessionId"] for c in dm.creates_for(user)] == list(sids)


def test_concurrent_users_get_their_own_sessions(module_httpd, dm):
    users = ["user-%d" % i for i in range(8)]
    server = module_httpd(portal_conf(dm), users=users)
    dm.set_mode("delay", applies_to="create", delay_ms=200)
    results = {}

    def client(user):
        results[user] = assert_session(session_get(server, user))

    threads = [threading.Thread(target=client, args=(u,)) for u in users * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == sorted(users)
    assert len(set(results.values())) == len(users)
    sessions = dm.state()["sessions"]
    for user, sid in results.items():
        assert sessions[sid]["customerId"] == user
        assert len(dm.creates_for(user)) == 1
