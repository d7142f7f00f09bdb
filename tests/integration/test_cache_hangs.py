"""A shared cache server that hangs never hangs the portal. Stopped with
SIGSTOP (a frozen VM, a full network queue, a failover in progress) or
never completing the connect, Redis and memcached alike: 64 concurrent
eager pages and session requests of cached and new customers each answer
within PegaDMCacheTimeout plus 2 seconds (a bound against hanging, not a
benchmark), pages are served without a session, the JSON endpoint answers
503 with Retry-After, static pages are served, nothing is created that
could not be stored; once the server answers again, sessions come back."""

import functools
import itertools
import time

import pytest

from pegadm_harness import (CacheFront, Memcached, RedisServer, assert_json_error,
                            assert_retry_after, assert_session, parse_vars, paused, run_together,
                            session_get, shared_cache_conf, wait_for)


CACHE_TIMEOUT = 0.5
BOUND = CACHE_TIMEOUT + 2
EAGER_PAGE = "/eager/session.shtml"
STATIC_PAGE = "/index.html"
PER_KIND = 16  # customers of each kind (cached, new) and request (page, endpoint): 64
LOCAL_COPY_AGE = 1.2  # past PegaDMLocalCacheMaxAge (1 s with a shared cache)
SERVER_CLASSES = {"redis": RedisServer, "memcache": Memcached}
runs = itertools.count()


@pytest.fixture(scope="module", params=sorted(SERVER_CLASSES))
def real_cache(request, workdir):
    server = SERVER_CLASSES[request.param](workdir).start()
    yield server
    server.stop()


def node_conf(dm, value):
    return shared_cache_conf(dm, value, server_extra=[
        "PegaDMCacheTimeout %s" % CACHE_TIMEOUT, "PegaDMCreateWaiters 64"])


def timed(call):
    def run():
        began = time.monotonic()
        result = call()
        return result, time.monotonic() - began
    return run


def hang_burst(node, cached, new):
    """64 requests of the module (an eager page and a session request of
    each customer) and 8 static pages, released together; each answer with
    the seconds it took, by kind."""
    calls = {"page": [functools.partial(node.request, "GET", EAGER_PAGE, user=c)
                      for c in cached + new],
             "endpoint": [functools.partial(session_get, node, c) for c in cached + new],
             "static": [functools.partial(node.request, "GET", STATIC_PAGE)] * 8}
    flat = [(kind, timed(call)) for kind, group in calls.items() for call in group]
    answers = run_together([call for _, call in flat], timeout=60)
    found = {kind: [] for kind in calls}
    for (kind, _), answer in zip(flat, answers):
        assert not isinstance(answer, Exception), (kind, answer)
        found[kind].append(answer)
    return found


def assert_portal_served_without_cache(found):
    for resp, took in found["page"]:
        assert took <= BOUND, ("an eager page took %.2fs" % took, resp)
        assert resp.status == 200, resp
        assert parse_vars(resp.body)["SID"] == b"(none)", resp
    for resp, took in found["endpoint"]:
        assert took <= BOUND, ("a session request took %.2fs" % took, resp)
        assert_json_error(resp, 503, "upstream_unavailable")
        assert_retry_after(resp)
    for resp, took in found["static"]:
        assert took <= BOUND, ("a static page took %.2fs" % took, resp)
        assert resp.status == 200 and resp.body == b"harness ok\n", resp


@pytest.mark.parametrize("hang", ["sigstop", "never_connect"])
def test_a_hung_cache_server_never_hangs_the_portal(module_httpd, dm, real_cache, hang):
    run = next(runs)
    cached = ["cached-%d-%02d" % (run, i) for i in range(PER_KIND)]
    new = ["new-%d-%02d" % (run, i) for i in range(PER_KIND)]
    front = CacheFront(real_cache.port) if hang == "never_connect" else None
    try:
        value = front.url(real_cache.kind) if front else real_cache.url
        node = module_httpd(node_conf(dm, value), users=cached + new)
        sids = {c: assert_session(session_get(node, c)) for c in cached}
        time.sleep(LOCAL_COPY_AGE)  # every lookup now asks the cache server
        creates = dm.create_count()
        if front:
            front.never_connect()
            found = hang_burst(node, cached, new)
            front.resume()
        else:
            with paused(real_cache):
                found = hang_burst(node, cached, new)
        assert_portal_served_without_cache(found)
        assert dm.create_count() == creates, "created sessions it could not store"

        def session_again():
            resp = session_get(node, cached[0])
            return resp.status == 200 and assert_session(resp)

        assert wait_for(session_again, 10, 0.2, "sessions again") == sids[cached[0]]

        def page_session():  # each child finds the server back on its own
            page = node.request("GET", EAGER_PAGE, user=cached[1])
            return parse_vars(page.body)["SID"].decode() != "(none)" and page

        page = wait_for(page_session, 10, 0.2, "an eager page with its session again")
        assert parse_vars(page.body)["SID"].decode() == sids[cached[1]]
        assert assert_session(session_get(node, new[0]))
        assert len(dm.creates_for(new[0])) == 1
    finally:
        if front:
            front.stop()
