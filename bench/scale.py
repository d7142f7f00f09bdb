#!/usr/bin/python3
"""Figure 5: 1,000, 10,000 and 100,000 distinct customers in the default
(shmcb) session cache: cached-path latency and memory per customer.

For each size a fresh httpd with the default cache settings is filled with
that many customers (one create each), then wrk rotates over all of them:
at 1 connection for the latency of the path itself (and of a static file
behind the same authentication, whose cache grows with the users too), at 32
for latency and throughput under load. Memory is the growth of the proportional set size
(PSS, shared pages counted once) of all httpd processes over the fill; the
emulator's create count during the wrk runs shows whether any customer's
session was pushed out of the cache (it would be created again).
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

SIZES = (1000, 10000, 100000)
FILL_LIMIT = 900.0  # seconds; the 100,000 fill is bounded by the emulator's speed
CONNECTIONS = 32


def one_size(wd, emulator, users, n, seconds):
    body = (pb.pegadm_server_lines(emulator, extra=("LogLevel warn pegadm:info",))
            + pb.standard_locations(users.dbm_path))
    with pb.Httpd(wd, "scale-%d" % n, body) as server:
        # Authentication's own cache (mod_authn_socache) fills first, so the
        # growth measured below is the module's alone.
        warm = pb.fill(server.port, "/static/session.json", users.names(n),
                       time_limit=FILL_LIMIT)
        before = pb.pss_kb(server.pids())
        filled = pb.fill(server.port, pb.SESSION_PATH, users.names(n), time_limit=FILL_LIMIT)
        pb.log("%d customers: fill %s" % (n, filled))
        after = pb.pss_kb(server.pids())
        emulator.reset()  # the emulator's records of the fill are not needed
        headers = users.headers(n)
        quiet = pb.Wrk(server.url(pb.SESSION_PATH), headers, seconds, 1, threads=1).run()
        # the same users on a static file: authentication's share of the latency
        # (its cache grows with the users too)
        static = pb.Wrk(server.url("/static/session.json"), headers, seconds, 1,
                        threads=1).run()
        loaded = pb.Wrk(server.url(pb.SESSION_PATH), headers, seconds, CONNECTIONS).run()
        recreated = emulator.create_count()
        layout = re.findall(r"PEGADM402: (.*)", server.error_log())
        crashes = server.crashes()
    stored = filled["status"].get("200", 0)
    row = {
        "customers": n, "authentication_warm_up": warm, "fill": filled, "stored": stored,
        "pss_before_kb": before, "pss_after_kb": after,
        "bytes_per_customer": round((after - before) * 1024 / stored, 1) if stored else None,
        "c1": summary(quiet), "c32": summary(loaded), "static_c1": summary(static),
        "recreated_during_runs": recreated, "cache_layout": layout[-1] if layout else None,
        "crashes": crashes,
    }
    pb.log("%d: %s B/customer, c1 p50 %s us, c32 p99 %s us, recreated %d" % (
        n, row["bytes_per_customer"], row["c1"]["p50_us"], row["c32"]["p99_us"], recreated))
    return row


def summary(res):
    return {"rps": float(res["rps"]), "p50_us": float(res["percentiles_us"]["50"]),
            "p99_us": float(res["percentiles_us"]["99"]),
            "errors": sum(res["errors"].values()), "non_2xx": int(res["errors"]["status"])}


def main():
    args = pb.cli(__doc__.splitlines()[0])
    sizes, seconds = ((1000, 5000), 3) if args.quick else (SIZES, 10)
    pb.require_module()
    load_before = pb.wait_until_quiet()
    rows = []
    with pb.Workdir() as wd:
        users = pb.Users(wd, max(sizes))
        emulator = pb.start_emulator(wd)
        try:
            for n in sizes:
                rows.append(one_size(wd, emulator, users, n, seconds))
        finally:
            emulator.stop()
    # what one more customer costs, free of the fixed costs in the smallest row
    first, last = rows[0], rows[-1]
    marginal = round((last["pss_after_kb"] - last["pss_before_kb"]
                      - first["pss_after_kb"] + first["pss_before_kb"]) * 1024
                     / (last["stored"] - first["stored"]), 1)
    met = all(r["stored"] == r["customers"] and r["recreated_during_runs"] == 0
              and r["c32"]["errors"] == 0 for r in rows)
    pb.save_result("scale", {
        "quick": args.quick, "seconds": seconds, "connections": CONNECTIONS, "rows": rows,
        "marginal_bytes_per_customer": marginal, "met": met,
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
