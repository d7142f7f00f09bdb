#!/usr/bin/python3
"""Shared-cache reads with and without the node mutex: one node over Redis,
then memcached, every lookup read from the cache server (PegaDMLocalCache
0): PegaDMCacheReadLock On (the default), Off, and Off with the cache
providers' connections kept for an hour instead of 15 seconds, in ABC-CBA
order in one run. Besides req/s and the latency percentiles it counts the
connections the cache server accepted during each run: a connection pool
that closes and opens connections under load shows there.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

USERS = 1000
CONNECTIONS = 32
PERCENTILES = ("50", "99", "99.9", "99.99")


def cache_connections(kind, port):
    """Connections the cache server has accepted since it started."""
    probe, field = ((b"INFO stats\r\n", "total_connections_received") if kind == "redis"
                    else (b"stats\r\n", "total_connections"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(probe)
        data = b""
        while not complete(kind, data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode().splitlines():
        parts = line.replace("STAT ", "").replace(":", " ").split()
        if len(parts) == 2 and parts[0] == field:
            return int(parts[1])
    raise RuntimeError("no %s in the %s stats" % (field, kind))


def complete(kind, data):
    if kind != "redis":
        return data.endswith(b"END\r\n")
    head, sep, rest = data.partition(b"\r\n")
    return bool(sep) and head.startswith(b"$") and len(rest) >= int(head[1:]) + 2


# The providers' own connection pools keep one idle connection beyond
# their need for this long (socache_memcache's and socache_redis's default:
# 15 s); the "keep" variant keeps them for an hour.
KEEP_CONNECTIONS = {"memcache": "MemcacheConnTTL 3600", "redis": "RedisConnPoolTTL 3600"}
VARIANTS = {"locked": [], "unlocked": ["PegaDMCacheReadLock Off"],
            "unlocked-keep": ["PegaDMCacheReadLock Off", "%(keep)s"]}


def one_cache(wd, emulator, users, kind, variants, rounds, seconds):
    cache = pb.cache_server(kind, wd).start()
    servers = {}
    try:
        for name, extra in variants.items():
            extra = ["PegaDMLocalCache 0"] + [line % {"keep": KEEP_CONNECTIONS[kind]}
                                              for line in extra]
            body = (pb.pegadm_server_lines(emulator, cache=cache.provider, extra=extra)
                    + pb.standard_locations(users.dbm_path))
            servers[name] = pb.Httpd(wd, "%s-%s" % (kind, name), body).start()
        pb.fill(servers["unlocked"].port, pb.SESSION_PATH, users.names())
        runs = {name: [] for name in variants}
        names = list(variants)
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                before = cache_connections(kind, cache.port)
                res = pb.Wrk(servers[name].url(pb.SESSION_PATH), users.headers(), seconds,
                             CONNECTIONS).run()
                res["cache_connections"] = cache_connections(kind, cache.port) - before
                runs[name].append(res)
                pb.log("  %s %-8s %8.0f req/s  p99 %7.0f us  p99.9 %7.0f us  %d connections" % (
                    kind, name, float(res["rps"]), float(res["percentiles_us"]["99"]),
                    float(res["percentiles_us"]["99.9"]), res["cache_connections"]))
        crashes = sum((s.crashes() for s in servers.values()), [])
    finally:
        for server in servers.values():
            server.stop()
        cache.stop()
    out = {}
    for name, rs in runs.items():
        out[name] = {
            "rps": pb.median([float(r["rps"]) for r in rs]),
            "runs_rps": [float(r["rps"]) for r in rs],
            "percentiles_us": {p: pb.median([float(r["percentiles_us"][p]) for r in rs])
                               for p in PERCENTILES},
            "worst_us": {p: max(float(r["percentiles_us"][p]) for r in rs)
                         for p in PERCENTILES},
            "cache_connections": [r["cache_connections"] for r in rs],
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
    return {"cache": kind, "variants": out, "crashes": crashes}


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 3) if args.quick else (4, 10)
    pb.require_module()
    load_before = pb.wait_until_quiet()
    rows = []
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        emulator = pb.start_emulator(wd)
        try:
            for kind in ("redis", "memcache"):
                emulator.reset()
                rows.append(one_cache(wd, emulator, users, kind, VARIANTS, rounds, seconds))
        finally:
            emulator.stop()
    pb.save_result("shared_reads", {
        "quick": args.quick, "users": USERS, "connections": CONNECTIONS, "rounds": rounds,
        "seconds": seconds, "rows": rows, "load_before": load_before,
        "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
