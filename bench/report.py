#!/usr/bin/python3
"""Turns bench/results/*.json into the tables of docs/benchmarks.md (between
its "bench-results" markers; the prose around them is kept) and the plots
docs/bench-*.png (gnuplot, pngcairo).

    bench/report.py [--results DIR] [--docs DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
BEGIN = "<!-- bench-results:begin (bench/report.py writes this part) -->"
END = "<!-- bench-results:end -->"


def load(results_dir, name):
    path = os.path.join(results_dir, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def yes(flag):
    return "**yes**" if flag else "**no**"


def kps(rps):
    return "{:,.0f}".format(float(rps))


def ms(us):
    return "%.2f ms" % (float(us) / 1000)


def mib(kb):
    return "%.0f MiB" % (kb / 1024)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def quick_note(res):
    return " (quick run: not a figure)" if res.get("quick") else ""


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------

def machine_section(m):
    if not m:
        return "No machine description recorded (run bench/run-all).\n"
    rows = [("CPUs (nproc)", m["nproc"]), ("CPU", m["cpu"]),
            ("memory", "%s MiB" % m["memory_mib"]), ("kernel", m["kernel"]),
            ("Debian", m["debian"]), ("httpd", m["httpd"]), ("curl", m["curl"]),
            ("wrk", m["wrk"]), ("Node.js", m["node"]), ("Redis", m["redis"]),
            ("memcached", m["memcached"]),
            ("load average at start", " ".join(str(x) for x in m.get("load", []))),
            ("recorded", m["finished"])]
    return table(("", ""), rows)


# Figures 1 and 2: the module's cost on a cached request, at 1,000 and at
# 100,000 customers (PEGADM_BENCH_USERS=100000 writes the "-100000" files).
CACHED_FIGURES = (
    ("session_vs_static", "1", "cached session endpoint / same-size static JSON", "static",
     "session"),
    ("eager_vs_off", "2", "eager SSI page / same page with PegaDM Off", "off", "eager"))
MODULE_US_TARGET = 2.0


def module_us(f):
    """CPU per request under the module's code (perf), or None."""
    p = f.get("profile")
    return p["handler_us_per_request"] if p else None


def cached_summary_row(f, num, what, a, b, customers):
    v, us = f["variants"], module_us(f)
    met = f["met"] and us is not None and us <= MODULE_US_TARGET
    return ("%s (%s)" % (num, "{:,}".format(customers)),
            "%s, req/s; CPU per request under the module (perf)" % what,
            "%.3f (%s / %s req/s); %s us%s" % (
                f["ratio"], kps(v[b]["rps"]), kps(v[a]["rps"]),
                "n/a" if us is None else "%.1f" % us, quick_note(f)),
            ">= 0.95; <= %.0f us" % MODULE_US_TARGET, yes(met))


def summary_rows(r):
    rows = []
    for name, num, what, a, b in CACHED_FIGURES:
        for suffix, customers in (("", 1000), ("-100000", 100000)):
            f = r.get(name + suffix)
            if f:
                rows.append(cached_summary_row(f, num, what, a, b, customers))
    f = r.get("first_request")
    if f:
        p = f["percentiles_ms"]
        rows.append(("3", "first request of a new customer, 20 ms per call (floor 40 ms)",
                     "p50 %.2f ms (+%.2f), p99 %.2f ms (+%.2f)%s" % (
                         p["50"], f["p50_over_floor_ms"], p["99"], f["p99_over_floor_ms"],
                         quick_note(f)),
                     "p50 <= 42 ms, p99 <= 50 ms", yes(f["met"])))
    f = r.get("vs_node")
    if f:
        m, n, c = f["variants"]["mod_pegadm"], f["variants"]["node"], f["checks"]
        ceiling = c.get("httpd_static_vs_node")
        rows.append(("4", "mod_pegadm vs Node.js/Express 2-worker cluster, cached",
                     "%.2fx req/s%s; p99 %s vs %s; RSS %s vs %s%s" % (
                         c["rps_ratio"],
                         " (httpd's static file behind the same authentication: %.2fx)"
                         % ceiling if ceiling else "",
                         ms(m["p99_us"]), ms(n["p99_us"]), mib(m["rss_kb"]),
                         mib(n["rss_kb"]), quick_note(f)),
                     ">= 2x, lower p99, lower RSS", yes(f["met"])))
    f = r.get("vs_proxy")
    if f:
        m, p, c = f["variants"]["mod_pegadm"], f["variants"]["proxy"], f["checks"]
        rows.append(("4b", "mod_pegadm vs httpd (same authentication) + mod_proxy + the "
                           "Node.js/Express 2-worker cluster reading the user from a header, "
                           "cached",
                     "%.2fx req/s; p99 %s vs %s; RSS %s vs %s; httpd CPU per request %.1f vs "
                     "%.1f us (+ %.1f us in Node.js); creates during the runs: %d%s" % (
                         c["rps_ratio"], ms(m["p99_us"]), ms(p["p99_us"]), mib(m["rss_kb"]),
                         mib(p["rss_kb"]), m["httpd_cpu_us"], p["httpd_cpu_us"],
                         p["node_cpu_us"], f["creates_during_runs"], quick_note(f)),
                     ">= 3.5x, lower p99, less RSS; 0 creates", yes(f["met"])))
    f = r.get("scale")
    if f:
        last = f["rows"][-1]
        rows.append(("5", "%s customers in the default shmcb cache" % "{:,}".format(
                         last["customers"]),
                     "all kept (%d re-created); p50 %s at 1 connection; %.0f B per customer "
                     "(marginal PSS)%s" % (last["recreated_during_runs"],
                                           ms(last["c1"]["p50_us"]),
                                           f["marginal_bytes_per_customer"], quick_note(f)),
                     "table and plot; none pushed out", yes(f["met"])))
    f = r.get("two_nodes")
    if f:
        rw = f["rows"]
        rows.append(("6", "two nodes, requests spread / simultaneous first requests: "
                          "customers with two creates (Redis / memcached)",
                     "spread %d / %d of %d, simultaneous %d / %d of %d; throughput vs shmcb "
                     "%.2f / %.2f%s" % (
                         rw["redis"]["spread"]["several_creates"],
                         rw["memcache"]["spread"]["several_creates"], f["users"],
                         rw["redis"]["race"]["several_creates"],
                         rw["memcache"]["race"]["several_creates"], f["race_users"],
                         rw["redis"]["throughput_vs_shmcb"],
                         rw["memcache"]["throughput_vs_shmcb"], quick_note(f)),
                     "0; cost reported", yes(f["met"])))
    rows += cache_summary_rows(r)
    f = r.get("nodes")
    if f:
        rows.append(("6b", "three nodes (%s MPMs), simultaneous first requests: customers "
                           "with 2+ creates / two IDs / nodes disagreeing after "
                           "(memcached; Redis)" % ", ".join(f["nodes"]),
                     "%s of %d each%s" % ("; ".join(
                         "%d / %d / %d" % (row["several_creates"], row["handed_two_ids"],
                                           row["nodes_disagree_after"])
                         for row in (f["rows"]["memcache"], f["rows"]["redis"])),
                         f["customers"], quick_note(f)),
                     "0 / 0 / 0", yes(f["met"])))
    f = r.get("load_flap")
    if f:
        e = f["connection_errors"]
        rows.append(("7", "load test: 60 s, 2 x 64 connections, flapping service, graceful",
                     "unintended 5xx: %d; connection errors: worker MPM %d, event MPM %d "
                     "(httpd alone under event: %d); crashes: %d; children's private memory "
                     "after warm-up %s%s" % (
                         len(f["unintended_statuses"]), e["worker"], e["event"],
                         e["event_httpd_alone"], f["crashes"],
                         pct(f["private_growth_after_warmup"]), quick_note(f)),
                     "0; 0 (worker), counted beside httpd alone (event); 0; < 5% after warm-up",
                     yes(f["met"])))
    return rows


def cached_section(f, num, name, a, b):
    title = {"session_vs_static": "Cached session endpoint vs static JSON",
             "eager_vs_off": "Eager SSI page vs PegaDM Off"}[name]
    out = ["### %s. %s, %s customers\n\n" % (num, title, "{:,}".format(f["users"])),
           interleaved_table(f, (a, b))]
    what = ("answer body %d bytes" % f["body_bytes"] if "body_bytes" in f else
            "page %d bytes; session ID exported into the page: %s" % (
                f["page_bytes"][0], f["session_exported"]))
    out.append("\n%d users rotating, %d connections, %d rounds of %d s per variant in ABBA "
               "order; %s; runs repeated %d time(s), worst spread between runs of one variant "
               "%.0f%%.\n\n" % (f["users"], f["connections"], f["rounds"], f["seconds"], what,
                                 f.get("tries", 1), 100 * f["worst_spread"]))
    out.append(warmed_note(f))
    if f.get("cpu_us_added") is not None:
        out.append("httpd's CPU time per request differs by %+.1f us between the two "
                   "variants (other work on the machine moves this by several us; the perf "
                   "figure below is the module's own). " % f["cpu_us_added"])
    out.append(profile_table(f.get("profile")) + "\n")
    return "".join(out)


def detail_sections(r):
    out = []
    for name, num, what, a, b in CACHED_FIGURES:
        for suffix in ("", "-100000"):
            f = r.get(name + suffix)
            if f:
                out.append(cached_section(f, num, name, a, b))
                if name == "session_vs_static" and not suffix and r.get("cached_path_cost"):
                    out.append(cost_table(r["cached_path_cost"]) + "\n")
    f = r.get("first_request")
    if f:
        p = f["percentiles_ms"]
        d = f["delay_check"]
        out.append("### 3. First request of a new customer\n\n")
        out.append(table(("percentile", "50", "90", "99", "99.9", "max"),
                         [("latency", "%.2f ms" % p["50"], "%.2f ms" % p["90"],
                           "%.2f ms" % p["99"], "%.2f ms" % p["99.9"],
                           ms(f["wrk"]["latency_us"]["max"]))]))
        out.append("\n%d new customers in %d s at %d connections, every request a customer "
                   "never seen before (answers: %s); customers with more than one create: "
                   "%d. The emulator's delay does not serialise calls: %d calls at once took "
                   "%.1f ms in all (one after the other would be %d ms).\n\n" % (
                       f["new_customers"], f["seconds"], f["connections"],
                       f["wrk"]["statuses"], f["customers_with_several_creates"],
                       d["calls"], d["wall_ms"], d["serial_would_be_ms"]))
    f = r.get("vs_node")
    if f:
        out.append("### 4. mod_pegadm vs Node.js/Express\n\n")
        rows = []
        for name in ("mod_pegadm", "node", "httpd_static"):
            if name not in f["variants"]:
                continue
            v = f["variants"][name]
            rows.append((name, kps(v["rps"]), ms(v["p50_us"]), ms(v["p99_us"]),
                         mib(v["rss_kb"]), v["processes"]))
        out.append(table(("server", "req/s", "p50", "p99", "RSS (sum)", "processes"), rows))
        out.append("\n%d users, %d connections, %d alternating runs of %d s each (medians); "
                   "every session cached beforehand (the Node.js workers each keep their own "
                   "Map: %d fill passes until no worker created any more); creates during "
                   "the runs: %d.\n\n" % (
                       f["users"], f["connections"], 2 * f["rounds"], f["seconds"],
                       f["node_warm_passes"], f["creates_during_runs"]))
    f = r.get("vs_proxy")
    if f:
        out.append(proxy_section(f))
    f = r.get("scale")
    if f:
        out.append("### 5. 1,000 / 10,000 / 100,000 customers\n\n")
        rows = []
        for row in f["rows"]:
            static = row.get("static_c1")
            rows.append(("{:,}".format(row["customers"]), "%.1f s" % row["fill"]["seconds"],
                         ms(row["c1"]["p50_us"]), ms(row["c1"]["p99_us"]),
                         ms(static["p50_us"]) if static else "n/a",
                         kps(row["c32"]["rps"]), ms(row["c32"]["p99_us"]),
                         "%.1f MiB" % ((row["pss_after_kb"] - row["pss_before_kb"]) / 1024),
                         "%.0f B" % row["bytes_per_customer"], row["recreated_during_runs"]))
        out.append(table(("customers", "fill", "p50 (1 conn)", "p99 (1 conn)",
                          "static file p50 (1 conn)", "req/s (32 conn)", "p99 (32 conn)", "PSS growth",
                          "per customer", "re-created"), rows))
        layout = f["rows"][-1].get("cache_layout")
        out.append("\nMarginal memory: %.0f bytes per additional customer (PSS growth from "
                   "the smallest to the largest fill). %s\n\n" % (
                       f["marginal_bytes_per_customer"],
                       ("The module's own account of the default cache: \"%s\"." % layout)
                       if layout else ""))
    f = r.get("two_nodes")
    if f:
        out.append("### 6. Two nodes sharing a cache\n\n")
        rows = []
        for kind in ("shmcb", "redis", "memcache"):
            row = f["rows"][kind]
            s, rc = row["spread"], row["race"]
            rows.append((kind, "%d" % s["several_creates"], "%d" % s["nodes_disagree"],
                         kps(row["cached"]["rps"]),
                         "%.2f" % row.get("throughput_vs_shmcb", 1.0),
                         ms(row["cached"]["p99_us"]),
                         "%d / %d / %d" % (rc["several_creates"], rc["handed_two_ids"],
                                           rc["nodes_disagree_after"])))
        out.append(table(("cache", "spread: customers with 2+ creates",
                          "spread: nodes disagree after", "cached req/s (both nodes)",
                          "vs shmcb", "cached p99", "simultaneous first request: 2+ creates / "
                          "handed two IDs / disagree after"), rows))
        out.append("\nSpread: %d customers, wrk with %d connections per node for %d s. "
                   "Simultaneous: %d other customers whose first request reached both "
                   "nodes at once. With shmcb each node has its own cache, so every "
                   "customer has one session per node: that row is the throughput "
                   "baseline, not a candidate.\n\n" % (
                       f["users"], f["connections_per_node"], f["seconds"], f["race_users"]))
    f = r.get("nodes")
    if f:
        out.append(nodes_section(f))
    f = r.get("load_flap")
    if f:
        out.append(load_section(f, r.get("heap_profile")))
    return "".join(out)


def proxy_section(f):
    out = ["### 4b. mod_pegadm vs httpd + mod_proxy + Node.js/Express\n\n"]
    rows = []
    for name, label in (("mod_pegadm", "mod_pegadm"),
                        ("proxy", "httpd + mod_proxy + Node.js")):
        v = f["variants"][name]
        rows.append((label, kps(v["rps"]), ms(v["p50_us"]), ms(v["p99_us"]), mib(v["rss_kb"]),
                     v["processes"], "%.1f us" % v["httpd_cpu_us"],
                     "%.1f us" % v["node_cpu_us"] if name == "proxy" else "n/a"))
    out.append(table(("deployment", "req/s", "p50", "p99", "RSS (sum)", "processes",
                      "httpd CPU per request", "Node.js CPU per request"), rows))
    out.append("\n%d users, %d connections, %d alternating runs of %d s each (medians); the "
               "proxy's httpd has the same authentication as mod_pegadm's, sets `%s` to "
               "the authenticated user (`RequestHeader unset %s early`, then `RequestHeader "
               "set %s \"expr=%%{REMOTE_USER}\"`) and passes the request over mod_proxy_http's "
               "kept-alive connections (`ttl=%d`) to a %d-worker cluster. Every session "
               "cached beforehand (%d fill passes straight to the Node.js workers until none "
               "created any more; the fill through the proxy then created %d); creates during "
               "the runs: %d. RSS: httpd's processes, plus the Node.js processes for the "
               "proxy.\n\n" % (
                   f["users"], f["connections"], 2 * f["rounds"], f["seconds"],
                   f["user_header"], f["user_header"], f["user_header"], f["proxy_ttl_s"],
                   f["workers"], f["node_warm_passes"], f["creates_through_proxy_fill"],
                   f["creates_during_runs"]))
    return "".join(out)


def us_pair(p):
    return "%s / %s" % (ms(p["50"]), ms(p["99"])) if p else "n/a"


def nodes_section(f):
    out = ["### 6b. Simultaneous first requests on three nodes\n\n"]
    rows = []
    for kind, label in (("memcache", "memcached"), ("redis", "Redis")):
        row = f["rows"][kind]
        rows.append((label, row["customers"], row["several_creates"],
                     row["handed_two_ids_first"], row["handed_two_ids"],
                     row["nodes_disagree_after"], row["failed_answers"], row["creates"],
                     us_pair(row["send_skew_us"]), us_pair(row["latency_us"]),
                     len(row["crashes"])))
    out.append(table(("cache", "customers", "2+ creates", "two IDs in the first answers",
                      "two IDs in any answer", "nodes disagree after", "failed answers",
                      "creates", "requests' send skew p50 / p99", "first answer p50 / p99",
                      "crashes"), rows))
    out.append("\nThree nodes (%s MPMs) over one cache server; each customer's very first "
               "request sent to all three at the same instant (one thread per node on its own "
               "kept-alive connection, released by a barrier, %d customers at a time; the "
               "send skew is the time between the first and the last of the three leaving), "
               "then every node asked again.\n\n" % (
                   ", ".join(f["nodes"]), f["customers_at_a_time"]))
    return "".join(out)


RUN_LABELS = (("event", "module, event MPM"), ("worker", "module, worker MPM"),
              ("event_httpd_alone", "httpd alone, event MPM"))


def answers(statuses):
    return "; ".join("%s %s" % (name, ", ".join("%s: %s" % kv for kv in sorted(st.items())))
                     for name, st in sorted(statuses.items()))


def mib_of_bytes(n):
    return "n/a" if n is None else "%.2f MiB" % (n / 1048576)


def load_section(f, heap):
    out = ["### 7. Load test: flapping service, graceful restart\n\n"]
    rows = []
    for key, label in RUN_LABELS:
        run = f["runs"][key]
        rows.append((label, " + ".join(run["targets"]), sum(run["requests"].values()),
                     answers(run["statuses"]), sum(run["connection_errors"].values()),
                     "%s s" % run["graceful_at"], len(run["crashes"])))
    out.append(table(("run (%d s)" % f["runs"]["event"]["seconds"], "targets", "requests",
                      "answers", "connection errors", "graceful at", "crashes"), rows))
    out.append("\nService flapping every %d ms (failing by %s); emulator, module under "
               "event: %d creates, %d faults injected. \"httpd alone\" is the same "
               "authentication in front of a static file and of the page with `PegaDM Off`.\n\n"
               % (f["flap_ms"], f["fail_mode"], f["runs"]["event"]["emulator"]["creates"],
                  f["runs"]["event"]["emulator"]["faults"]))
    rows = []
    for key, label in (("soak", "default allocator"),
                       ("soak_tcache_off", "glibc tcache off")):
        run = f.get(key)
        if run:
            rows.append((label, "%d s" % run["seconds"], "%d s" % run["warmup"],
                         pct(run["private_growth"]), pct(run["rss_growth"]),
                         pct(run["private_growth_whole"]),
                         sum(run["connection_errors"].values()), len(run["crashes"])))
    out.append(table(("soak (event MPM, `PegaDMCacheTTL 60`)", "length", "warm-up",
                      "private memory after warm-up (judged)", "RSS after warm-up",
                      "private memory over the whole soak", "connection errors", "crashes"),
                     rows))
    if heap:
        out.append("\nHeap profile (`bench/heap_profile.py`, httpd in one process under heaptrack, "
                   "%d + %d connections, the same flapping service and `PegaDMCacheTTL 60`, "
                   "killed at the end so nothing is freed on the way out):\n\n" % (
                       heap["connections_per_target"], heap["connections_per_target"]))
        rows = [("%d s" % h["seconds"], h["creates"], h["requests"], mib_of_bytes(h["heap_live_at_end"]),
                 mib_of_bytes(h["heap_peak"])) for h in (heap["short"], heap["long"])]
        out.append(table(("run", "sessions made", "requests", "heap still allocated at the end",
                          "peak heap"), rows))
        out.append("\nNo leak: %s%s.\n" % (yes(heap["met"]), quick_note(heap)))
    out.append("\n")
    return "".join(out)


def pct(value):
    return "n/a" if value is None else "%+.1f%%" % (100 * value)


def interleaved_table(f, names):
    rows = []
    for name in names:
        v = f["variants"][name]
        rows.append((name, kps(v["rps"]), ms(v["p50_us"]), ms(v["p99_us"]),
                     "%.1f us" % v["cpu_us"] if v.get("cpu_us") is not None else "n/a",
                     ", ".join(kps(x) for x in v["runs_rps"])))
    return table(("variant", "req/s", "p50", "p99", "httpd CPU per request", "runs (req/s)"),
                 rows)


def warmed_note(f):
    w = f.get("warmed")
    if not w:
        return ""
    return ("Measured in the steady state: before the runs, %s requests over all the "
            "customers (%.1f per customer), so that each child's local cache had seen about "
            "every customer (one is missing from one of two children with odds of about 1 in "
            "4,000).\n\n" % (
                kps(w["requests"]), w["per_customer"]))


def profile_table(profile):
    if not profile:
        return "(perf was not available: no breakdown)\n"
    rows = [(t["call"], "%.2f us" % t["us_per_request"], "%.0f%%" % (100 * t["share_of_handler"]))
            for t in profile["top"]]
    if profile.get("scope") == "module":
        entries = [(t["call"], "%.2f us" % t["us_per_request"],
                    "%.0f%%" % (100 * t["share_of_handler"])) for t in profile["entries"]]
        return ("Where the module's time goes (perf, %d samples; %.1f us per request under any "
                "of the module's hooks and filters, %.0f%% of httpd's samples):\n\n" % (
                    profile["samples"], profile["handler_us_per_request"],
                    100 * profile["handler_share"])
                + table(("the module's hook", "per request", "of the module"), entries) + "\n"
                + table(("the module calls", "per request", "of the module"), rows))
    return ("Where the handler's time goes (perf, %d samples; %.1f us per request under the "
            "handler, %.0f%% of httpd's samples):\n\n" % (
                profile["samples"], profile["handler_us_per_request"],
                100 * profile["handler_share"])
            + table(("the module calls", "per request", "of the handler"), rows))


def cost_table(cost):
    order = ("cache_id (module)", "cache_id (HMAC set up once)", "unseal (module)",
             "unseal (cipher fetched once)", "JSON answer (jansson)",
             "mutex lock+unlock, uncontended")
    calls = cost["ns_per_call"]
    rows = [(name, "%.0f ns" % calls[name]) for name in sorted(
        calls, key=lambda n: order.index(n) if n in order else len(order))]
    return ("The same steps timed alone, one thread, %d calls each "
            "(bench/micro/cached_path_cost.c):\n\n" % cost["rounds"]
            + table(("step", "per call"), rows))


# --------------------------------------------------------------------------
# the module's own cache clients: figure 6 again (6c), a hung cache (9), one
# cache operation over TLS and plain TCP (10)
# --------------------------------------------------------------------------

CLIENT_LABELS = {"shmcb": "shmcb, each node its own (baseline)",
                 "redis": "Redis, the module's client",
                 "memcache": "memcached, the module's client",
                 "redis-old": "Redis, APR-util (before)",
                 "memcache-old": "memcached, APR-util (before)"}


def machine_note(f):
    m = f.get("machine") or {}
    loads = [load[0] for load in f.get("loads", [])]
    during = " (1-minute load during the runs: %.1f to %.1f)" % (min(loads), max(loads)) \
        if loads else ""
    return ("Machine: %s, %s CPUs; load average %s before, %s after%s; recorded %s.\n\n" % (
        m.get("cpu", "?"), m.get("nproc", "?"),
        " ".join(str(x) for x in f.get("load_before", [])),
        " ".join(str(x) for x in f.get("load_after", [])), during, f.get("finished", "?")))


def cache_summary_rows(r):
    rows = []
    for f in clients_results(r):
        v = f["variants"]
        rows.append(("6c (%s)" % "{:,}".format(f["users"]),
                     "two nodes, every customer cached, local cache on: shared cache "
                     "req/s / shmcb's (Redis / memcached; before: APR-util's clients)",
                     "%.2f / %.2f (before: %.2f / %.2f); httpd CPU per request %.0f / %.0f "
                     "us (shmcb %.0f us)%s" % (
                         v["redis"]["vs_shmcb"], v["memcache"]["vs_shmcb"],
                         v["redis-old"]["vs_shmcb"], v["memcache-old"]["vs_shmcb"],
                         v["redis"]["cpu_us"], v["memcache"]["cpu_us"], v["shmcb"]["cpu_us"],
                         quick_note(f)),
                     ">= %.2f" % f["target"], yes(f["met"])))
    f = r.get("cache_hang")
    if f:
        new = [c for k, row in f["rows"].items() if k.endswith("-new")
               for c in row["cases"].values()]
        old = [c for k, row in f["rows"].items() if k.endswith("-old")
               for c in row["cases"].values()]
        rows.append(("9", "a request while the cache hangs (SIGSTOP), worst case's p99 "
                          "(Redis and memcached; cached and new customers; page and endpoint)",
                     "%s (before: %d of %d with no answer within %.0f s)%s" % (
                         ms(1000 * max(c["p99_ms"] for c in new)),
                         sum(c["unanswered"] for c in old), sum(c["requests"] for c in old),
                         f["wait_s"], quick_note(f)),
                     "<= %s (PegaDMCacheTimeout + 50 ms)" % ms(1000 * f["target_ms"]),
                     yes(f["met"])))
    f = r.get("cache_ops")
    if f:
        one = {row["transport"]: row for row in f["rows"] if row["threads"] == 1}
        rows.append(("10", "one cache operation (GET), plain TCP / TLS, 1 thread: p50, p99; "
                           "handshakes per 1,000 operations",
                     "%.0f / %.0f us, %.0f / %.0f us; %s / %s%s" % (
                         one["plain"]["get_us"]["50"], one["tls"]["get_us"]["50"],
                         one["plain"]["get_us"]["99"], one["tls"]["get_us"]["99"],
                         one["plain"]["handshakes_per_1000"], one["tls"]["handshakes_per_1000"],
                         quick_note(f)),
                     "reported", "n/a"))
    return rows


def clients_results(r):
    """Figure 6c's results: 3,000 customers first, then other counts."""
    return [r[k] for k in sorted((k for k in r if k.startswith("cache_clients")),
                                 key=lambda k: (k != "cache_clients", k))]


def clients_profiles(f):
    """perf on one node of each shared-cache pair: the module's CPU per request
    and its five dearest calls."""
    rows = []
    for name in f["order"]:
        p = f["variants"][name].get("profile")
        if p:
            rows.append((CLIENT_LABELS.get(name, name), "%.1f us" % p["handler_us_per_request"],
                         "%.1f us" % p["all_us_per_request"], "; ".join(
                             "%s %.2f us" % (t["call"], t["us_per_request"]) for t in p["top"][:5])))
    if not rows:
        return ""
    return ("Where httpd's CPU goes (perf on one node of each pair while wrk loads that node "
            "alone, 4 s; the module's share is every sample under one of its hooks, the "
            "cache client's work and its system calls included):\n\n"
            + table(("cache", "under the module, per request", "all of httpd, per request",
                     "the module's dearest calls"), rows) + "\n")


def cache_sections(r):
    out = []
    for f in clients_results(r):
        out.append("### 6c. Two nodes sharing a cache: the module's own clients, %s "
                   "customers\n\n" % "{:,}".format(f["users"]))
        rows = []
        for name in f["order"]:
            v = f["variants"][name]
            rows.append((CLIENT_LABELS.get(name, name), kps(v["rps"]), "%.2f" % v["vs_shmcb"],
                         ms(v["p50_us"]), ms(v["p99_us"]), "%.1f us" % v["cpu_us"],
                         "%.1f us" % v["cache_cpu_us"],
                         ", ".join(str(c) for c in v["cache_connections"])
                         if v["cache"] else "n/a",
                         "n/a" if v.get("shared_reads_per_request") is None else
                         "%.2f" % v["shared_reads_per_request"],
                         "n/a" if v.get("shared_read_us") is None else
                         "%.0f us" % v["shared_read_us"],
                         ", ".join(kps(x) for x in v["runs_rps"])))
        out.append(table(("cache", "req/s (both nodes, median)", "vs shmcb", "p50", "p99",
                          "httpd CPU per request", "cache server CPU per request",
                          "connections accepted per run", "shared-cache GETs per request",
                          "one GET (mean, as the module timed it)", "runs (req/s)"), rows))
        out.append("\n%d customers, every one cached; wrk with %d connections per node on both "
                   "nodes at once, %d rounds of %d s per variant in %s order (then reversed), "
                   "all ten nodes running throughout; each pair has its own cache server. "
                   "\"Before\" is the module of commit %s. Creates during the runs: %d; "
                   "crashes: %d.\n\n" % (
                       f["users"], f["connections_per_node"], f["rounds"], f["seconds"],
                       "-".join(f["order"]), f["old_commit"], f["creates_during_runs"],
                       len(f["crashes"])))
        out.append(machine_note(dict(f, loads=[x for v in f["variants"].values()
                                               for x in v["loads"]])))
        out.append(clients_profiles(f))
    f = r.get("cache_hang")
    if f:
        out.append("### 9. A request while the cache hangs\n\n")
        rows = []
        for key in ("redis-new", "redis-old", "memcache-new", "memcache-old"):
            row = f["rows"].get(key)
            if not row:
                continue
            kind, label = key.split("-")
            for case, c in row["cases"].items():
                answered = c["requests"] - c["unanswered"]
                rows.append(("Redis" if kind == "redis" else "memcached",
                             "own client" if label == "new" else "APR-util (before)", case,
                             "no answer within %.0f s" % f["wait_s"] if not answered
                             else ms(1000 * c["p50_ms"]),
                             "no answer within %.0f s" % f["wait_s"] if c["unanswered"] * 100
                             >= c["requests"] else ms(1000 * c["p99_ms"]),
                             ", ".join("%s: %d" % kv for kv in sorted(c["statuses"].items())),
                             ", ".join("%s s" % x for x in row["recovery_s"])))
        out.append(table(("cache", "module", "customers, request", "p50", "p99", "answers",
                          "sessions again after SIGCONT"), rows))
        out.append("\n%d bursts per cache and module, each of %d requests at once (%d per "
                   "case) on their own connections, sent %.1f s after SIGSTOP (past "
                   "PegaDMLocalCacheMaxAge); PegaDMCacheTimeout %g s; a request not answered "
                   "within %.0f s is counted as no answer; SIGCONT after each burst. "
                   "\"Before\" is the module of commit %s.\n\n" % (
                       f["bursts"], 4 * f["per_case"], f["per_case"], f["local_copy_age_s"],
                       f["cache_timeout_s"], f["wait_s"], f["old_commit"]))
        out.append(machine_note(f))
    f = r.get("cache_ops")
    if f:
        out.append("### 10. One cache operation over plain TCP and TLS\n\n")
        rows = []
        for row in f["rows"]:
            rows.append(("TLS" if row["transport"] == "tls" else "plain TCP", row["threads"],
                         "%.0f us" % row["get_us"]["50"], "%.0f us" % row["get_us"]["99"],
                         "%.0f us" % row["set_us"]["50"], "%.0f us" % row["set_us"]["99"],
                         "%s (%s)" % (row["handshakes_per_1000"],
                                      ", ".join(str(h) for h in row["handshakes"])),
                         "%.0f us / %.0f us" % (row["fresh_first_get_us"]["50"],
                                                row["fresh_first_get_us"]["99"]),
                         row["failed"]))
        out.append(table(("transport", "threads", "GET p50", "GET p99", "SET p50", "SET p99",
                          "connections opened per 1,000 operations (per run)",
                          "first GET of a new client p50 / p99", "failed"), rows))
        out.append("\nbench/micro/cache_op_cost.c against build/libpegadm_core.a: the "
                   "module's Redis client (a pool of as many connections as threads, as in a "
                   "child) against redis-server on loopback, plain and TLS only (a throwaway "
                   "CA made with openssl at run time, host name verified); per run %d "
                   "operations (a SET and a GET of a 320-byte value per round), %d runs per "
                   "row in ABBA order (medians). A connection opened is a connect, the TLS "
                   "handshake and the Redis handshake; the last column is the first operation "
                   "of %d clients with no connection yet each: what every operation would "
                   "cost without reuse.\n\n" % (
                       f["rows"][0]["operations_per_run"], f["rounds"],
                       f["rows"][0]["fresh_clients_per_run"]))
        out.append(machine_note(f))
    return "".join(out)


# --------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------

def gnuplot(script, workdir):
    proc = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True,
                          cwd=workdir, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("gnuplot failed: %s" % proc.stderr)


def data_file(workdir, name, rows):
    path = os.path.join(workdir, name)
    with open(path, "w") as fh:
        for row in rows:
            fh.write(" ".join('"%s"' % c if isinstance(c, str) else str(c) for c in row) + "\n")
    return path


STYLE = """set terminal pngcairo size 900,520 font "sans,10"
set grid ytics
set key top left
"""


def plot_throughput(r, docs, workdir):
    rows = []
    for name, a, b, la, lb in (("session_vs_static", "static", "session", "static JSON",
                                "session endpoint"),
                               ("eager_vs_off", "off", "eager", "page, PegaDM Off",
                                "page, eager")):
        f = r.get(name)
        if f:
            rows += [(la, f["variants"][a]["rps"]), (lb, f["variants"][b]["rps"])]
    f = r.get("vs_node")
    if f:
        rows += [("mod_pegadm (cached)", f["variants"]["mod_pegadm"]["rps"]),
                 ("Node.js/Express (cached)", f["variants"]["node"]["rps"])]
    f = r.get("vs_proxy")
    if f:
        rows += [("httpd + mod_proxy + Node.js", f["variants"]["proxy"]["rps"])]
    f = r.get("two_nodes")
    if f:
        rows += [("2 nodes, shmcb", f["rows"]["shmcb"]["cached"]["rps"]),
                 ("2 nodes, Redis", f["rows"]["redis"]["cached"]["rps"]),
                 ("2 nodes, memcached", f["rows"]["memcache"]["cached"]["rps"])]
    if not rows:
        return None
    data = data_file(workdir, "throughput.dat", rows)
    gnuplot(STYLE + """set output "{out}"
set title "Requests per second (wrk on the same machine; higher is better)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -30 scale 0
set ylabel "req/s"
set yrange [0:*]
unset key
plot "{data}" using 2:xtic(1) lc rgb "#3b6ea5", "" using 0:2:(sprintf("%.0f",$2)) with labels offset 0,0.7 notitle
""".format(out=os.path.join(docs, "bench-throughput.png"), data=data), workdir)
    return "bench-throughput.png"


def plot_first_request(r, docs, workdir):
    f = r.get("first_request")
    if not f:
        return None
    rows = [(float(p), v) for p, v in f["percentiles_ms"].items()]
    data = data_file(workdir, "first.dat", sorted(rows))
    floor = f["floor_ms"]
    gnuplot(STYLE + """set output "{out}"
set title "First request of a new customer, service taking 20 ms per call"
set xlabel "percentile"
set ylabel "latency (ms)"
set xrange [0:100]
set yrange [{lo}:{hi}]
plot "{data}" using 1:2 with linespoints lw 2 lc rgb "#3b6ea5" title "measured", \
     {floor} with lines dt 2 lc rgb "black" title "floor: 2 calls x 20 ms", \
     {p50} with lines dt 3 lc rgb "#2a9d3a" title "p50 target (floor + 2 ms)", \
     {p99} with lines dt 3 lc rgb "#c0392b" title "p99 target (floor + 10 ms)"
""".format(out=os.path.join(docs, "bench-first-request.png"), data=data, floor=floor,
           p50=floor + 2, p99=floor + 10, lo=floor - 5,
           hi=max(floor + 15, max(v for _, v in rows) + 2)), workdir)
    return "bench-first-request.png"


def plot_scale(r, docs, workdir):
    f = r.get("scale")
    if not f:
        return None
    rows = [(row["customers"], row["c1"]["p50_us"], row["c1"]["p99_us"],
             row.get("static_c1", {}).get("p50_us", "NaN"), row["c32"]["p99_us"] / 1000,
             row["bytes_per_customer"]) for row in f["rows"]]
    data = data_file(workdir, "scale.dat", rows)
    gnuplot(STYLE.replace("900,520", "1000,460") + """set output "{out}"
set multiplot layout 1,2 title "Cached path against the number of customers (default shmcb cache)"
set logscale x
set xrange [500:200000]
set xtics ("1k" 1000, "10k" 10000, "100k" 100000)
set xlabel "customers"
set ylabel "latency, 1 connection (us)"
set yrange [0:*]
plot "{data}" using 1:2 with linespoints lw 2 title "session endpoint, p50", \
     "" using 1:3 with linespoints lw 2 title "session endpoint, p99", \
     "" using 1:4 with linespoints lw 2 dt 2 title "static file, same auth, p50"
set ylabel "bytes per customer (PSS growth / customers)"
plot "{data}" using 1:6 with linespoints lw 2 lc rgb "#c0392b" title "measured", \
     {marginal} with lines dt 2 lc rgb "black" title "marginal ({marginal:.0f} B)"
unset multiplot
""".format(out=os.path.join(docs, "bench-scale.png"), data=data,
           marginal=f["marginal_bytes_per_customer"]), workdir)
    return "bench-scale.png"


def plot_load(r, docs, workdir):
    f = r.get("load_flap")
    if not f or "soak" not in f:
        return None
    soak, off = f["soak"], f.get("soak_tcache_off") or {"samples": []}
    by_t = {}
    for s in soak["samples"]:
        by_t.setdefault(int(s["t"]), {})["rss"] = s["children_rss_kb"] / 1024
        by_t[int(s["t"])]["private"] = s["children_private_kb"] / 1024
    for s in off["samples"]:
        by_t.setdefault(int(s["t"]), {})["off"] = s["children_private_kb"] / 1024
    rows = [(t, v.get("rss", float("nan")), v.get("private", float("nan")),
             v.get("off", float("nan"))) for t, v in sorted(by_t.items())]
    data = data_file(workdir, "load.dat", rows)
    gnuplot(STYLE + """set output "{out}"
set title "Soak under the load test's load: memory of the two children"
set xlabel "seconds"
set ylabel "MiB"
set yrange [0:*]
set datafile missing "nan"
set arrow from {w},graph 0 to {w},graph 1 nohead dt 2 lc rgb "black"
set label "end of warm-up" at {w},graph 0.95 offset 0.5,0
plot "{data}" using 1:2 with lines lw 2 lc rgb "#3b6ea5" title "resident (with the shared caches)", \\
     "" using 1:3 with lines lw 2 lc rgb "#c0392b" title "private (heap, stacks)", \\
     "" using 1:4 with lines lw 2 dt 2 lc rgb "#c0392b" title "private, glibc tcache off"
""".format(out=os.path.join(docs, "bench-load.png"), data=data, w=soak["warmup"]), workdir)
    return "bench-load.png"


# --------------------------------------------------------------------------

def render(results_dir, docs):
    names = ("session_vs_static", "session_vs_static-100000", "eager_vs_off",
             "eager_vs_off-100000", "first_request", "vs_node", "vs_proxy",
             "scale", "two_nodes", "nodes", "load_flap", "heap_profile", "cached_path_cost",
             "cache_clients", "cache_hang", "cache_ops")
    names += tuple(sorted(n[:-len(".json")] for n in os.listdir(results_dir)
                          if n.startswith("cache_clients-") and n.endswith(".json")))
    r = {name: load(results_dir, name) for name in names}
    r = {k: v for k, v in r.items() if v}
    with tempfile.TemporaryDirectory() as workdir:
        plots = [p for p in (plot_throughput(r, docs, workdir),
                             plot_first_request(r, docs, workdir),
                             plot_scale(r, docs, workdir), plot_load(r, docs, workdir)) if p]
    parts = [BEGIN, "\n\n### Machine\n\n", machine_section(load(results_dir, "machine")),
             "\n### Figures against their targets\n\n",
             table(("#", "figure", "measured", "target", "met"), summary_rows(r)), "\n"]
    parts += ["![%s](%s)\n\n" % (p[len("bench-"):-4], p) for p in plots]
    parts += [detail_sections(r), cache_sections(r), END]
    return "".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.environ.get(
        "PEGADM_BENCH_RESULTS", os.path.join(BENCH_DIR, "results")))
    parser.add_argument("--docs", default=os.path.join(REPO_ROOT, "docs"))
    args = parser.parse_args()
    os.makedirs(args.docs, exist_ok=True)
    section = render(args.results, args.docs)
    path = os.path.join(args.docs, "benchmarks.md")
    text = open(path).read() if os.path.exists(path) else BEGIN + END
    if BEGIN not in text or END not in text:
        sys.exit("%s lacks the bench-results markers" % path)
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w") as fh:
        fh.write(head + section + tail)
    print("wrote", os.path.relpath(path, os.getcwd()))


if __name__ == "__main__":
    main()
