#!/usr/bin/python3
"""How long a request takes while the shared cache hangs: redis-server, then
memcached, stopped with SIGSTOP (a frozen VM, a full network queue, a
failover in progress), under the module with its own cache clients
(PegaDMCacheTimeout 1, the default) and under the module before them
(OLD_COMMIT: APR-util's clients through mod_socache_redis and
mod_socache_memcache). Each burst: the server stopped, the children's
local copies left to grow older than PegaDMLocalCacheMaxAge (1 s), then
PER_CASE requests of each case released at once (cached customers and new
customers, the eager page and the session endpoint: 4 x PER_CASE requests
on their own connections), each waiting at most WAIT seconds for its
answer; SIGCONT always follows, whatever happened, and the node is given
time to serve again before the next burst.

Target: p99 at most PegaDMCacheTimeout + 50 ms with the module's own
clients; the old module is reported as "no answer within WAIT s".
"""

import http.client
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

CACHE_TIMEOUT = 1.0  # PegaDMCacheTimeout's default, written out for the new module
TARGET_S = CACHE_TIMEOUT + 0.05
WAIT = 10.0
LOCAL_COPY_AGE = 1.2  # past PegaDMLocalCacheMaxAge (1 s)
CASES = (("cached", "page"), ("cached", "endpoint"), ("new", "page"), ("new", "endpoint"))
PATHS = {"page": "/eager/page.shtml", "endpoint": pb.SESSION_PATH}


def timed_get(port, path, user, out, index, barrier):
    """One request on its own connection, released by barrier; out[index] =
    (status or "no answer" or "error", seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.connect()
        barrier.wait(timeout=30)
        began = time.monotonic()
        try:
            conn.request("GET", path, headers={"Authorization": pb.basic_header(user)})
            resp = conn.getresponse()
            resp.read()
            out[index] = (resp.status, time.monotonic() - began)
        except TimeoutError:
            out[index] = ("no answer", time.monotonic() - began)
        except (OSError, http.client.HTTPException) as err:
            out[index] = ("error: %s" % type(err).__name__, time.monotonic() - began)
    finally:
        conn.close()


def burst(node, cache, cached, new, per_case):
    """One burst while the cache server is stopped; {case: [(status, s)]}."""
    calls = []
    for who, what in CASES:
        names = cached[:per_case] if who == "cached" else [new.pop() for _ in range(per_case)]
        calls += [((who, what), PATHS[what], name) for name in names]
    out = [None] * len(calls)
    barrier = threading.Barrier(len(calls))
    threads = [threading.Thread(target=timed_get, args=(node.port, path, name, out, i, barrier),
                                daemon=True) for i, (_, path, name) in enumerate(calls)]
    with pb.caches.paused(cache):
        time.sleep(LOCAL_COPY_AGE)
        for t in threads:
            t.start()
        deadline = time.monotonic() + WAIT + 40
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    found = {"%s %s" % case: [] for case in CASES}
    for (case, _, _), answer in zip(calls, out):
        found["%s %s" % case].append(answer or ("client stuck", WAIT + 40))
    return found


def back(node, user, limit=30.0):
    """Seconds until the node hands `user` a session again (bounded)."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        try:
            if node.get(pb.SESSION_PATH, user, timeout=5).status == 200:
                return round(time.monotonic() - began, 2)
        except OSError:
            pass
        time.sleep(0.2)
    return None


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(answers):
    times = [s for _, s in answers]
    statuses = {}
    for status, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    unanswered = statuses.get("no answer", 0)
    return {"requests": len(answers), "statuses": statuses, "unanswered": unanswered,
            "p50_ms": round(1000 * percentile(times, 0.5), 1),
            "p99_ms": round(1000 * percentile(times, 0.99), 1),
            "max_ms": round(1000 * max(times), 1)}


def one(wd, emulator, users, label, module, kind, bursts, per_case):
    """label "new" or "old": the module's own clients or APR-util's."""
    pb.MODULE_PATH = module
    cache = pb.cache_server(kind, wd).start()
    node = None
    try:
        extra = ["PegaDMCacheTimeout %g" % CACHE_TIMEOUT] if label == "new" else []
        body = (pb.pegadm_server_lines(emulator, cache=cache.provider, extra=extra)
                + pb.standard_locations(users.dbm_path))
        node = pb.Httpd(wd, "%s-%s" % (kind, label), body).start()
        cached = users.names()[:per_case]
        new = users.names()[per_case:]
        pb.fill(node.port, pb.SESSION_PATH, cached)
        found = {"%s %s" % case: [] for case in CASES}
        recovery = []
        for _ in range(bursts):
            for case, answers in burst(node, cache, cached, new, per_case).items():
                found[case] += answers
            recovery.append(back(node, cached[0]))
        crashes = node.crashes()
    finally:
        if node:
            node.stop()
        cache.stop()
    rows = {case: summarize(answers) for case, answers in found.items()}
    pb.log("%s %s: %s; back after %s s" % (kind, label, {c: (r["p99_ms"], r["unanswered"])
                                            for c, r in rows.items()}, recovery))
    return {"cases": rows, "recovery_s": recovery, "crashes": crashes}


def main():
    args = pb.cli(__doc__.splitlines()[0])
    bursts, per_case = (1, 8) if args.quick else (3, 16)
    pb.require_module()
    new_module = pb.MODULE_PATH
    old_module = pb.old_module()
    load_before = pb.wait_until_quiet()
    results = {}
    with pb.Workdir() as wd:
        users = pb.Users(wd, per_case * (1 + 2 * bursts) + 10)
        emulator = pb.start_emulator(wd)
        try:
            for kind in ("redis", "memcache"):
                for label, module in (("new", new_module), ("old", old_module)):
                    emulator.reset()
                    results["%s-%s" % (kind, label)] = one(wd, emulator, users, label, module,
                                                           kind, bursts, per_case)
        finally:
            emulator.stop()
    met = all(case["p99_ms"] <= 1000 * TARGET_S and not case["unanswered"]
              for key, r in results.items() if key.endswith("-new")
              for case in r["cases"].values())
    pb.save_result("cache_hang", {
        "quick": args.quick, "bursts": bursts, "per_case": per_case, "wait_s": WAIT,
        "cache_timeout_s": CACHE_TIMEOUT, "target_ms": round(1000 * TARGET_S),
        "local_copy_age_s": LOCAL_COPY_AGE, "old_commit": pb.OLD_COMMIT, "rows": results,
        "met": met, "machine": pb.machine(),
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
