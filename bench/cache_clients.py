#!/usr/bin/python3
"""Figure 6 with the module's own cache clients: two httpd nodes over one
Redis, over one memcached (the module's clients), over the same servers
through the module before them (OLD_COMMIT: httpd's mod_socache_redis and
mod_socache_memcache, APR-util's clients), and each node with its own shmcb
(the baseline), all five pairs running at once and measured in
ABCDE-EDCBA order in one run. Every customer cached, the local cache on (the
default: each child reads the shared cache again once a copy is older than
PegaDMLocalCacheMaxAge), wrk on both nodes of a pair at once. Per variant:
req/s of both nodes together, p50 and p99 (the worse node's), CPU time per
request of both nodes' httpd processes and of the cache server, and the
connections the cache server accepted. Then (not with --quick) perf on
one node of each shared-cache pair, the module's clients and APR-util's in
turn: the CPU time per request under the module's hooks, and what it calls.

Target: a shared cache with the module's own clients serves at least 0.95
of shmcb's requests per second.

CACHE_CLIENTS_USERS=n: n customers instead of 3,000 (results in
cache_clients-n.json).

PEGADM_BENCH_OLD_MODULE=path: the module to measure as "before" instead of
building OLD_COMMIT.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402
from shared_reads import cache_connections  # noqa: E402

USERS = int(os.environ.get("CACHE_CLIENTS_USERS", "3000"))  # another count: cache_clients-N.json
CONNECTIONS = 16  # per node, as figure 6
TARGET = 0.95
# name: (module, cache kind or None for shmcb)
VARIANTS = {"shmcb": ("new", None), "redis": ("new", "redis"), "memcache": ("new", "memcache"),
            "redis-old": ("old", "redis"), "memcache-old": ("old", "memcache")}


STATUS_LOCATION = "<Location /pegadm-status>\n    SetHandler pegadm-status\n</Location>\n"


def cache_gets(pair):
    """(shared-cache GETs, seconds they took, {bucket bound: cumulative
    count}) of both nodes so far, from pegadm-status's pegadm_cache_seconds;
    None from the old module, which has no such histogram."""
    count = total = 0.0
    buckets = {}
    for node in pair:
        body = pb.harness.http_request(node.port, "GET", "/pegadm-status?format=prometheus",
                                       timeout=10).body
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith('pegadm_cache_seconds_count{op="get"}'):
                count += float(line.split()[-1])
            elif line.startswith('pegadm_cache_seconds_sum{op="get"}'):
                total += float(line.split()[-1])
            elif line.startswith('pegadm_cache_seconds_bucket{op="get",le="'):
                le = line.split('le="')[1].split('"')[0]
                buckets[le] = buckets.get(le, 0) + float(line.split()[-1])
    return (count, total, buckets) if count else None


def bucket_percentile(before, after, q):
    """The histogram bucket (its upper bound, "+Inf" past the last) holding
    the q-th quantile of the GETs between two readings."""
    done = after["+Inf"] - before["+Inf"]
    for le in sorted(after, key=lambda b: float("inf") if b == "+Inf" else float(b)):
        if after[le] - before[le] >= q * done:
            return le
    return "+Inf"


def wrk_pair(pair, headers, seconds):
    runs = [pb.Wrk(node.url(pb.SESSION_PATH), hf, seconds, CONNECTIONS, threads=1,
                   statuses=True).start() for node, hf in zip(pair, headers)]
    return [run.wait() for run in runs]


def one_run(name, pair, cache, headers, seconds):
    pids = [pid for node in pair for pid in node.pids()]
    cache_pids = [cache.proc.pid] if cache else []
    before = cache_connections(cache.kind, cache.port) if cache else 0
    gets = cache_gets(pair) if cache else None
    cpu, cache_cpu = pb.cpu_seconds(pids), pb.cpu_seconds(cache_pids)
    results = wrk_pair(pair, headers, seconds)
    requests = sum(int(r["requests"]) for r in results)
    after = cache_gets(pair) if gets else None
    res = {"rps": round(sum(float(r["rps"]) for r in results), 1),
           "requests": requests,
           "p50_us": max(float(r["percentiles_us"]["50"]) for r in results),
           "p99_us": max(float(r["percentiles_us"]["99"]) for r in results),
           "cpu_us": round(1e6 * (pb.cpu_seconds(pids) - cpu) / max(requests, 1), 1),
           "cache_cpu_us": round(1e6 * (pb.cpu_seconds(cache_pids) - cache_cpu)
                                 / max(requests, 1), 1),
           "cache_connections": (cache_connections(cache.kind, cache.port) - before
                                 if cache else None),
           "errors": sum(sum(int(v) for v in r["errors"].values()) for r in results),
           # the share of requests that read the shared cache, and how long a read took
           "shared_reads_per_request": (round((after[0] - gets[0]) / max(requests, 1), 3)
                                        if after else None),
           "shared_read_us": (round(1e6 * (after[1] - gets[1]) / max(after[0] - gets[0], 1), 1)
                              if after else None),
           "shared_read_p50_bucket": bucket_percentile(gets[2], after[2], 0.5) if after else None,
           "shared_read_p99_bucket": bucket_percentile(gets[2], after[2], 0.99) if after else None,
           "statuses": [r.get("statuses") for r in results],
           "load": pb.loadavg()}
    pb.log("  %-12s %8.0f req/s  p99 %7.0f us  %6.1f us CPU/req (+%5.1f in the cache server)  "
           "%s connections  %s shared reads/req of %s us  load %s" % (
               name, res["rps"], res["p99_us"], res["cpu_us"], res["cache_cpu_us"],
               res["cache_connections"], res["shared_reads_per_request"], res["shared_read_us"],
               res["load"]))
    return res


def summary(rs):
    total = sum(r["requests"] for r in rs)
    weigh = lambda key: round(sum(r[key] * r["requests"] for r in rs) / total, 1)
    return {"rps": pb.median([r["rps"] for r in rs]),
            "runs_rps": [r["rps"] for r in rs],
            "p50_us": pb.median([r["p50_us"] for r in rs]),
            "p99_us": pb.median([r["p99_us"] for r in rs]),
            "worst_p99_us": max(r["p99_us"] for r in rs),
            "cpu_us": weigh("cpu_us"), "cache_cpu_us": weigh("cache_cpu_us"),
            "runs_cpu_us": [r["cpu_us"] for r in rs],
            "cache_connections": [r["cache_connections"] for r in rs],
            "errors": sum(r["errors"] for r in rs),
            "shared_reads_per_request": (pb.median([r["shared_reads_per_request"] for r in rs])
                                         if rs[0]["shared_reads_per_request"] is not None
                                         else None),
            "shared_read_us": (pb.median([r["shared_read_us"] for r in rs])
                               if rs[0]["shared_read_us"] is not None else None),
            "shared_read_buckets": [(r["shared_read_p50_bucket"], r["shared_read_p99_bucket"])
                                    for r in rs],
            "non_200": sum(n for r in rs for st in r["statuses"] if st
                           for code, n in st.items() if code != "200"),
            "spread": pb.spread([r["rps"] for r in rs]),
            "loads": [r["load"] for r in rs]}


def start_pairs(wd, emulator, users, modules):
    """{variant: (node a, node b, cache server or None)}, every node up."""
    """Each pair its own cache server, so that the two modules never read
    each other's entries."""
    caches, pairs = {}, {}
    try:
        for name, (module, kind) in VARIANTS.items():
            cache = caches[name] = pb.cache_server(kind, wd).start() if kind else None
            body = (pb.pegadm_server_lines(emulator, cache=cache.provider if cache else None)
                    + pb.standard_locations(users.dbm_path) + STATUS_LOCATION)
            pb.MODULE_PATH = modules[module]  # write_config writes the LoadModule line from it
            a = pb.Httpd(wd, name + "-a", body).start()
            pairs[name] = (a, None, cache)
            pairs[name] = (a, pb.Httpd(wd, name + "-b", body).start(), cache)
    except BaseException:
        stop_pairs(pairs, caches)
        raise
    return pairs, caches


def stop_pairs(pairs, caches):
    for a, b, _ in pairs.values():
        for node in (a, b):
            if node:
                node.stop()
    for cache in caches.values():
        if cache:
            cache.stop()


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 2) if args.quick else (4, 6)
    pb.require_module()
    modules = {"new": pb.MODULE_PATH, "old": pb.old_module()}
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        headers = [users.headers(USERS), users.headers(USERS, shift=USERS // 2)]
        emulator = pb.start_emulator(wd)
        pairs, caches = {}, {}
        try:
            pairs, caches = start_pairs(wd, emulator, users, modules)
            for name, (a, b, _) in pairs.items():
                pb.fill(a.port, pb.SESSION_PATH, users.names())
                pb.fill(b.port, pb.SESSION_PATH, users.names())
                wrk_pair((a, b), headers, 3 if not args.quick else 1)  # warm the local caches
            creates_before = sum(emulator.creates_per_customer().values())
            runs = {name: [] for name in VARIANTS}
            order = list(VARIANTS)
            for r in range(rounds):
                for name in (order if r % 2 == 0 else order[::-1]):
                    a, b, cache = pairs[name]
                    runs[name].append(one_run(name, (a, b), cache, headers, seconds))
            profiles = {} if args.quick else {
                name: pb.profile_module(pairs[name][0], pairs[name][0].url(pb.SESSION_PATH),
                                        headers[0], CONNECTIONS, scope="module")
                for name in ("redis", "redis-old", "memcache", "memcache-old")}
            creates = sum(emulator.creates_per_customer().values()) - creates_before
            crashes = sum((node.crashes() for a, b, _ in pairs.values() for node in (a, b)), [])
        finally:
            stop_pairs(pairs, caches)
            emulator.stop()
    variants = {name: dict(summary(rs), module=VARIANTS[name][0], cache=VARIANTS[name][1])
                for name, rs in runs.items()}
    for name, profile in profiles.items():
        variants[name]["profile"] = profile
    base = variants["shmcb"]["rps"]
    for v in variants.values():
        v["vs_shmcb"] = pb.ratio(v["rps"], base)
    met = all(variants[k]["vs_shmcb"] >= TARGET for k in ("redis", "memcache"))
    pb.save_result("cache_clients" if USERS == 3000 else "cache_clients-%d" % USERS, {
        "quick": args.quick, "users": USERS, "connections_per_node": CONNECTIONS,
        "rounds": rounds, "seconds": seconds, "variants": variants, "order": list(VARIANTS),
        "old_commit": pb.OLD_COMMIT, "creates_during_runs": creates, "crashes": crashes,
        "target": TARGET, "met": met, "machine": pb.machine(),
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
