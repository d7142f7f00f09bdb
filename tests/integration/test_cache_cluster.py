"""A Redis Cluster of three masters (redis-server --cluster-enabled, joined
by redis-cli --cluster create) behind PegaDMCache redis://seed,seed,...:
100 new customers whose first requests reach two httpd nodes at the same
instant get one create each and the same ID everywhere; a slot moved while
requests run is followed (ASK during the move, MOVED after it) without a
failed request beyond the first; one node given alone is found to be a
cluster and followed too."""

import functools
import itertools
import threading
import time

import pytest

from pegadm_harness import (RedisCluster, assert_session, run_together, session_get,
                            shared_cache_conf)


CUSTOMERS_AT_ONCE = 4  # customers raced at a time, each on both nodes
numbers = itertools.count()


@pytest.fixture(scope="module")
def cluster(workdir):
    servers = RedisCluster(workdir).start()
    yield servers
    servers.stop()


def customers(n):
    run = next(numbers)
    return ["cluster-%d-%03d" % (run, i) for i in range(n)]


def node_conf(dm, value):
    return shared_cache_conf(dm, value, server_extra=["PegaDMCacheTimeout 1"])


def race(nodes, users):
    answers = iter(run_together([functools.partial(session_get, node, user)
                                 for user in users for node in nodes]))
    return {user: [next(answers) for _ in nodes] for user in users}


def test_simultaneous_first_requests_on_two_nodes_make_one_create_each(module_httpd, dm, cluster):
    users = customers(100)
    nodes = [module_httpd(node_conf(dm, cluster.url), users=users, mpm=mpm)
             for mpm in ("event", "worker")]
    handed_out = {}
    for start in range(0, len(users), CUSTOMERS_AT_ONCE):
        for user, answers in race(nodes, users[start:start + CUSTOMERS_AT_ONCE]).items():
            sids = {assert_session(resp) for resp in answers}
            assert len(sids) == 1, (user, sids)
            handed_out[user] = sids.pop()
    counts = dm.creates_per_customer()
    assert {u: counts.get(u) for u in users} == {u: 1 for u in users}
    for user in users[:10]:
        assert {assert_session(session_get(node, user)) for node in nodes} == {handed_out[user]}
    # keys spread over the cluster: every node holds some
    assert len(set(cluster.keys().values())) == len(cluster.nodes)


def test_a_slot_moved_while_requests_run_is_followed(module_httpd, dm, cluster):
    users = customers(24)
    nodes = [module_httpd(node_conf(dm, cluster.url), users=users, mpm=mpm)
             for mpm in ("event", "prefork")]
    cluster.flush()  # the keys left are these customers', the slots moved theirs
    sids = {user: assert_session(session_get(nodes[i % 2], user)) for i, user in enumerate(users)}
    creates = dm.create_count()
    slots = sorted({cluster.slot(key) for key in cluster.keys()})
    failed, done = [], threading.Event()

    def ask_again():
        for round_ in range(5000):  # bounded: ends with the moves
            if done.is_set():
                return
            user = users[round_ % len(users)]
            resp = session_get(nodes[round_ % 2], user)
            if resp.status != 200 or resp.json().get("sessionId") != sids[user]:
                failed.append((user, resp))

    runner = threading.Thread(target=ask_again)
    runner.start()
    try:
        for i, slot in enumerate(slots):
            owner = cluster.owner(slot)
            target = cluster.nodes[(cluster.nodes.index(owner) + 1 + i % 2) % len(cluster.nodes)]
            cluster.move_slot(slot, target)
            time.sleep(0.02)
    finally:
        done.set()
        runner.join(120)
    assert not runner.is_alive()
    assert len(failed) <= 1, failed
    for user in users:
        assert assert_session(session_get(nodes[1], user)) == sids[user]
    assert dm.create_count() == creates


def test_a_cluster_given_as_one_host_is_followed(module_httpd, dm, cluster):
    users = customers(20)
    node = module_httpd(node_conf(dm, "redis://127.0.0.1:%d" % cluster.nodes[0].port),
                        users=users)
    cluster.flush()
    sids = {user: assert_session(session_get(node, user)) for user in users}
    assert {user: assert_session(session_get(node, user)) for user in users} == sids
    holders = {cluster.owner(cluster.slot(key)) for key in cluster.keys()}
    assert len(holders) > 1, "every key on the one node named"
    counts = dm.creates_per_customer()
    assert {u: counts.get(u) for u in users} == {u: 1 for u in users}
