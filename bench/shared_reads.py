#!/usr/bin/python3
"""Shared-cache reads with and without the node mutex: one node over Redis,
then memcached, every lookup read from the cache server (PegaDMLocalCache
0): PegaDMCacheReadLock On (the node mutex), Off with no bound per child
(PegaDMCacheReadsPerChild 0), and without the mutex bounded to 1, 2 and 4
reads at once per child process, in ABCDE-EDCBA order in one run. Besides
req/s, the latency percentiles and httpd's CPU time per request it counts
the connections the cache server accepted during each run: a connection
pool that closes and opens connections under load shows there.

SHARED_READS_PACE_MS=n: each connection waits n ms between an answer and its
next request, so that every variant serves about the same load below
saturation (results in shared_reads_paced.json).
"""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

USERS = 1000
CONNECTIONS = 32
PERCENTILES = ("50", "99", "99.9", "99.99")
PACE_MS = int(os.environ.get("SHARED_READS_PACE_MS", "0"))


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


VARIANTS = {"locked": ["PegaDMCacheReadLock On"],
            "unbounded": ["PegaDMCacheReadLock Off", "PegaDMCacheReadsPerChild 0"],
            "bounded-1": ["PegaDMCacheReadsPerChild 1"],
            "bounded-2": ["PegaDMCacheReadsPerChild 2"],
            "bounded-4": ["PegaDMCacheReadsPerChild 4"]}


def one_cache(wd, emulator, users, kind, variants, rounds, seconds):
    cache = pb.cache_server(kind, wd).start()
    servers = {}
    try:
        for name, extra in variants.items():
            extra = ["PegaDMLocalCache 0"] + extra
            body = (pb.pegadm_server_lines(emulator, cache=cache.provider, extra=extra)
                    + pb.standard_locations(users.dbm_path))
            servers[name] = pb.Httpd(wd, "%s-%s" % (kind, name), body).start()
        pb.fill(servers["unbounded"].port, pb.SESSION_PATH, users.names())
        runs = {name: [] for name in variants}
        names = list(variants)
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                before = cache_connections(kind, cache.port)
                pids = servers[name].pids()
                cpu = pb.cpu_seconds(pids)
                wrk = pb.Wrk(servers[name].url(pb.SESSION_PATH), users.headers(), seconds,
                             CONNECTIONS)
                wrk.env["PEGABENCH_DELAY_MS"] = str(PACE_MS)
                res = wrk.run()
                res["cpu_us"] = 1e6 * (pb.cpu_seconds(pids) - cpu) / max(int(res["requests"]), 1)
                res["cache_connections"] = cache_connections(kind, cache.port) - before
                res["load"] = pb.loadavg()
                runs[name].append(res)
                pb.log("  %s %-9s %8.0f req/s  p99 %7.0f us  p99.9 %7.0f us  %5.1f us CPU  "
                       "%d connections  load %s" % (
                           kind, name, float(res["rps"]), float(res["percentiles_us"]["99"]),
                           float(res["percentiles_us"]["99.9"]), res["cpu_us"],
                           res["cache_connections"], res["load"]))
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
            "cpu_us": round(pb.median([r["cpu_us"] for r in rs]), 2),
            "cache_connections": [r["cache_connections"] for r in rs],
            "load": [r["load"] for r in rs],
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
    return {"cache": kind, "variants": out, "crashes": crashes}


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 3) if args.quick else (4, 8)
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
    pb.save_result("shared_reads_paced" if PACE_MS else "shared_reads", {
        "quick": args.quick, "pace_ms": PACE_MS, "users": USERS, "connections": CONNECTIONS, "rounds": rounds,
        "seconds": seconds, "rows": rows, "load_before": load_before,
        "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
