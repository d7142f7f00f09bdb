"""The create mark on the cache server is taken with its expiry in the same
operation and released only by its owner; a mark a cache writer left
behind, without expiry or with a value the module never wrote, blocks its
customer for at most the mark's lifetime, for Redis and memcached alike."""

import threading
import time

import pytest

from cache_raw import RAW
from pegadm_harness import (Memcached, RedisServer, assert_json_error, assert_session,
                            same_origin_request, session_get, shared_cache_conf, wait_for)


SERVER_CLASSES = {"redis": RedisServer, "memcache": Memcached}
# PegaDMTimeout 1: a node waits up to 3 s for another's create; a mark lasts 4 s
MARK_TTL = 4.0


@pytest.fixture(scope="module", params=sorted(SERVER_CLASSES))
def real_cache(request, workdir):
    server = SERVER_CLASSES[request.param](workdir).start()
    yield server
    server.stop()


def learn_mark(node, dm, raw, user):
    """The key and value of user's create mark, seen while a slow create
    holds it: the key there during the create and gone after it."""
    dm.set_mode("delay", applies_to="create", delay_ms=700)  # under PegaDMTimeout
    done = []
    first = threading.Thread(target=lambda: done.append(session_get(node, user)))
    first.start()
    wait_for(lambda: dm.state()["tokens"], 10, what="the create to reach the service")
    during = {key: raw.get(key) for key in raw.keys()}
    first.join(30)
    dm.set_mode("ok")
    assert_session(done[0])
    gone = set(during) - set(raw.keys())
    assert len(gone) == 1, (sorted(during), sorted(raw.keys()))
    key = gone.pop()
    return key, during[key]


@pytest.mark.parametrize("left", ["without_expiry", "foreign_value"])
def test_a_mark_left_behind_blocks_its_customer_at_most_its_ttl(module_httpd, dm, real_cache,
                                                                left):
    user = "marked-%s-%s" % (real_cache.kind, left)
    node = module_httpd(shared_cache_conf(dm, real_cache.url, "PegaDMTimeout 1\n"),
                        users=[user])
    raw = RAW[real_cache.kind](real_cache)
    key, value = learn_mark(node, dm, raw, user)
    resp = same_origin_request(node, "DELETE", user)  # the next request creates again
    assert resp.status in (200, 204), resp
    if left == "without_expiry":
        raw.set(key, value)  # the module's own mark, its expiry lost
    else:
        raw.set(key, b"written by something else", expire=3600)
    written = time.monotonic()
    creates = dm.create_count()

    def created():
        resp = session_get(node, user)
        if resp.status != 200:
            assert_json_error(resp, 503, "upstream_unavailable")
            return None
        return assert_session(resp)

    wait_for(created, MARK_TTL + 6, 0.2, "the mark to stop blocking")
    assert time.monotonic() - written <= MARK_TTL + 2
    assert dm.create_count() == creates + 1
