#!/usr/bin/python3
"""One operation on a shared Redis, over plain TCP and over TLS: p50 and p99
of a GET and a SET of a session-sized value through the module's own client
(bench/micro/cache_op_cost.c linked against build/libpegadm_core.a), by one
thread and by 4 threads sharing one client as a child's threads do, the
connections the client opened per 1,000 operations (each one a connect, a
TLS handshake and the Redis handshake: connection reuse), and the first
operation of a client with no connection yet (what every operation would
cost without the pool). redis-server runs twice on loopback: plain, and TLS
only with a throwaway CA made with openssl at run time; the two alternate
in ABBA order.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

MICRO = os.path.join(pb.BENCH_DIR, "micro", "cache_op_cost.c")
THREADS = (1, 4)


def build(tmp):
    core = os.path.join(os.path.dirname(pb.MODULE_PATH), "libpegadm_core.a")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "apr-1", "apr-util-1", "jansson",
                            "libcurl", "libssl", "libcrypto", "hiredis", "libmemcached"],
                           capture_output=True, text=True, check=True).stdout.split()
    binary = os.path.join(tmp, "cache_op_cost")
    subprocess.run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I",
                    os.path.join(pb.REPO_ROOT, "src"), MICRO, core, "-o", binary]
                   + flags + ["-lpthread"], check=True)
    return binary


def run(binary, server, tls, ca, threads, ops, fresh):
    args = [binary, "127.0.0.1", str(server.port), "1" if tls else "0",
            ca.ca_cert if tls else "-", ca.NAME if tls else "-", str(threads), str(ops),
            str(fresh)]
    out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True,
                                    timeout=300).stdout)
    out["handshakes_per_1000"] = round(1000.0 * out["handshakes"] / out["operations"], 3)
    return out


def main():
    args = pb.cli(__doc__.splitlines()[0])
    ops, fresh, rounds = (2000, 20, 2) if args.quick else (20000, 200, 4)
    pb.require_module()
    load_before = pb.wait_until_quiet()
    runs = {(kind, t): [] for kind in ("plain", "tls") for t in THREADS}
    with pb.Workdir() as wd, tempfile.TemporaryDirectory() as tmp:
        binary = build(tmp)
        ca = pb.caches.CacheCA(wd)
        servers = {"plain": pb.caches.RedisServer(wd).start()}
        try:
            servers["tls"] = pb.caches.TLSRedisServer(wd, ca).start()
            order = ["plain", "tls"]
            for r in range(rounds):
                for kind in (order if r % 2 == 0 else order[::-1]):
                    for t in THREADS:
                        res = run(binary, servers[kind], kind == "tls", ca, t, ops, fresh)
                        res["load"] = pb.loadavg()
                        runs[(kind, t)].append(res)
                        pb.log("  %-5s %d thread(s): GET p50 %6.1f us p99 %7.1f us, SET p50 "
                               "%6.1f us p99 %7.1f us, %d handshakes for %d ops, first op of "
                               "a new client p50 %.0f us, failed %d" % (
                                   kind, t, res["get_us"]["50"], res["get_us"]["99"],
                                   res["set_us"]["50"], res["set_us"]["99"], res["handshakes"],
                                   res["operations"], res["fresh"]["first_get_us"]["50"],
                                   res["failed"]))
        finally:
            for server in servers.values():
                server.stop()
    rows = []
    for (kind, t), rs in runs.items():
        med = lambda f: round(pb.median([f(r) for r in rs]), 1)
        rows.append({
            "transport": kind, "threads": t, "runs": len(rs),
            "operations_per_run": rs[0]["operations"],
            "get_us": {p: med(lambda r, p=p: r["get_us"][p]) for p in ("50", "99", "99.9")},
            "set_us": {p: med(lambda r, p=p: r["set_us"][p]) for p in ("50", "99", "99.9")},
            "handshakes_per_1000": max(r["handshakes_per_1000"] for r in rs),
            "handshakes": [r["handshakes"] for r in rs],
            "failed": sum(r["failed"] for r in rs),
            "fresh_first_get_us": {p: med(lambda r, p=p: r["fresh"]["first_get_us"][p])
                                   for p in ("50", "99")},
            "fresh_clients_per_run": rs[0]["fresh"]["clients"],
        })
    pb.save_result("cache_ops", {
        "quick": args.quick, "rounds": rounds, "rows": rows, "machine": pb.machine(),
        "load_before": load_before, "load_after": pb.loadavg(),
        "loads": [r["load"] for rs in runs.values() for r in rs],
    })


if __name__ == "__main__":
    main()
