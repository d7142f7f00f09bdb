"""Several memcached behind PegaDMCache memcache://a,b[,c]: keys shared by
consistent hashing. 100 new customers whose first requests reach two
httpd nodes at the same instant get one create each, with two servers and
with three; a server stopped makes only its own customers' requests fail
(503), and never moves their keys to another server, so nobody is created
twice."""

import functools
import itertools
import time

import pytest

from pegadm_harness import (Memcached, assert_json_error, assert_retry_after, assert_session,
                            memcache_url, run_together, session_get, shared_cache_conf)


CUSTOMERS_AT_ONCE = 4
numbers = itertools.count()


@pytest.fixture(scope="module")
def three_memcached(workdir):
    servers = [Memcached(workdir).start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


def customers(n):
    run = next(numbers)
    return ["memc-%d-%03d" % (run, i) for i in range(n)]


def node_conf(dm, servers):
    return shared_cache_conf(dm, memcache_url(servers), server_extra=["PegaDMCacheTimeout 1"])


def race(nodes, users):
    answers = iter(run_together([functools.partial(session_get, node, user)
                                 for user in users for node in nodes]))
    return {user: [next(answers) for _ in nodes] for user in users}


@pytest.mark.parametrize("servers", [2, 3])
def test_simultaneous_first_requests_make_one_create_each(module_httpd, dm, three_memcached,
                                                          servers):
    users = customers(100)
    conf = node_conf(dm, three_memcached[:servers])
    nodes = [module_httpd(conf, users=users, mpm=mpm) for mpm in ("event", "prefork")]
    for start in range(0, len(users), CUSTOMERS_AT_ONCE):
        for user, answers in race(nodes, users[start:start + CUSTOMERS_AT_ONCE]).items():
            assert len({assert_session(resp) for resp in answers}) == 1, (user, answers)
    counts = dm.creates_per_customer()
    assert {u: counts.get(u) for u in users} == {u: 1 for u in users}


def test_a_stopped_server_fails_only_its_own_customers(module_httpd, dm, three_memcached):
    users, newcomers = customers(30), customers(12)
    conf = node_conf(dm, three_memcached)
    nodes = [module_httpd(conf, users=users + newcomers, mpm=mpm) for mpm in ("event", "worker")]
    sids = {user: assert_session(session_get(nodes[i % 2], user)) for i, user in enumerate(users)}
    creates = dm.creates_per_customer()
    stopped = three_memcached[1]
    stopped.stop()
    # the child that made a session keeps a copy for PegaDMLocalCacheMaxAge
    # (1 s with a shared cache): past it, every lookup asks the servers
    time.sleep(1.2)
    try:
        served, failed = set(), set()
        for user in users + newcomers:
            answers = [session_get(node, user) for node in nodes for _ in range(2)]
            if all(resp.status == 200 for resp in answers):
                assert {assert_session(resp) for resp in answers} == \
                    ({sids[user]} if user in sids else {answers[0].json()["sessionId"]})
                served.add(user)
                continue
            for resp in answers:  # a customer of the stopped server: never served, never made
                assert_json_error(resp, 503, "upstream_unavailable")
                assert_retry_after(resp)
            failed.add(user)
        assert served & set(users) and failed & set(users), (served, failed)
        counts = dm.creates_per_customer()
        for user in users:
            assert counts.get(user) == creates.get(user) == 1, user
        for user in newcomers:
            assert counts.get(user, 0) == (1 if user in served else 0), user
    finally:
        stopped.start()  # the same port, empty
