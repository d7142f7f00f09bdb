#!/usr/bin/python3
"""Figure 4: mod_pegadm against a Node.js/Express implementation of the same
flow (bench/node-express: Express, jsonwebtoken, a keep-alive HTTPS agent, an
in-memory Map cache, Basic authentication), run as a 2-worker cluster on the
same machine.

Both answer GET /pegadm/session for many distinct users whose sessions
already exist, behind {SHA} Basic authentication, in alternating runs; httpd
serving a static file of the same size behind the same authentication runs
alongside, as the ceiling of what httpd itself reaches here.
Targets: mod_pegadm at least 2x the requests per second, lower p99 latency,
lower resident memory (the sum of RSS over all processes of each server).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402
from pegadm_harness import (children_of, free_port, port_answers, stop_process,  # noqa: E402
                            wait_for, write_file)

NODE_DIR = os.path.join(pb.BENCH_DIR, "node-express")
USERS = 1000
CONNECTIONS = 32
WORKERS = 2
MAX_WARM_PASSES = 12


class NodeServer:
    """bench/node-express as a cluster of WORKERS; with user_header it trusts
    that request header for the user (behind a proxy that authenticates)
    instead of checking Basic credentials itself."""

    def __init__(self, workdir, emulator, users, user_header=None):
        self.port = free_port()
        secret = write_file(os.path.join(workdir, "node-secret"), pb.WIDGET_SECRET, 0o600)
        self.env = {"PATH": os.environ["PATH"], "PORT": str(self.port),
                    "WORKERS": str(WORKERS), "SERVICE_URL": emulator.url,
                    "WIDGET_ID": pb.WIDGET_ID, "SECRET_FILE": secret,
                    "CA_FILE": emulator.ca_file, "USERS_FILE": users.list_path,
                    "NODE_ENV": "production"}
        if user_header:
            self.env["USER_HEADER"] = user_header
        self.log_path = os.path.join(workdir, "node.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(["node", "server.js"], cwd=NODE_DIR, env=self.env,
                                         stdout=log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for(lambda: port_answers(self.port) and len(self.pids()) == WORKERS + 1,
                 pb.START_TIMEOUT, 0.1, "node on port %d" % self.port)
        return self

    def pids(self):
        return [self.proc.pid] + sorted(children_of(self.proc.pid))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        stop_process(self.proc, group=True, timeout=pb.STOP_TIMEOUT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def warm_node(node, emulator, users, headers_of=None):
    """Each worker keeps its own Map, and a kept-alive connection stays with
    the worker the cluster gave it (round robin): fill over one connection at
    a time until a whole pass creates nothing new (bounded). headers_of: the
    request headers naming a user (default: Basic credentials)."""
    for passes in range(1, MAX_WARM_PASSES + 1):
        before = emulator.create_count()
        pb.fill(node.port, pb.SESSION_PATH, users.names(), connections=1,
                headers_of=headers_of)
        if emulator.create_count() == before:
            return passes
    raise RuntimeError("node workers still creating sessions after %d passes" % passes)


def measure(name, url, pids, headers, seconds):
    res = pb.Wrk(url, headers, seconds, CONNECTIONS).run()
    bad = sum(res["errors"].values())
    if bad:
        raise RuntimeError("%s: errors %r" % (name, res["errors"]))
    run = {"rps": float(res["rps"]), "p50_us": float(res["percentiles_us"]["50"]),
           "p99_us": float(res["percentiles_us"]["99"]), "rss_kb": pb.rss_kb(pids),
           "processes": len(pids)}
    pb.log("  %-6s %9.0f req/s  p99 %7.0f us  RSS %6d kB in %d processes" % (
        name, run["rps"], run["p99_us"], run["rss_kb"], run["processes"]))
    return run


def summarise(runs):
    return {"rps": pb.median([r["rps"] for r in runs]),
            "p50_us": pb.median([r["p50_us"] for r in runs]),
            "p99_us": pb.median([r["p99_us"] for r in runs]),
            "rss_kb": max(r["rss_kb"] for r in runs),
            "processes": runs[-1]["processes"], "runs": runs}


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 3) if args.quick else (4, 10)
    pb.require_module()
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        sys.exit("bench/node-express/node_modules is missing: run bench/setup first")
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        headers = users.headers()
        emulator = pb.start_emulator(wd)
        try:
            body = pb.pegadm_server_lines(emulator) + pb.standard_locations(users.dbm_path)
            with pb.Httpd(wd, "node", body) as httpd, NodeServer(wd, emulator, users) as node:
                pb.fill(httpd.port, pb.SESSION_PATH, users.names())
                httpd.set_static_json(pb.same_size_json(
                    pb.session_body_size(httpd, users.name(0))))
                passes = warm_node(node, emulator, users)
                pb.log("node warm after %d passes" % passes)
                # httpd serving a static file behind the same authentication:
                # what httpd itself reaches here, with no module work at all
                targets = {"mod_pegadm": (httpd.url(pb.SESSION_PATH), httpd.pids),
                           "node": (node.url(pb.SESSION_PATH), node.pids),
                           "httpd_static": (httpd.url("/static/session.json"), httpd.pids)}
                for url, _ in targets.values():
                    pb.Wrk(url, headers, 3, CONNECTIONS).run()
                runs = {name: [] for name in targets}
                creates_before = emulator.create_count()
                for r in range(rounds):
                    for name in (list(targets) if r % 2 == 0 else list(targets)[::-1]):
                        url, pids = targets[name]
                        runs[name].append(measure(name, url, pids(), headers, seconds))
                creates_during = emulator.create_count() - creates_before
                crashes = httpd.crashes()
        finally:
            emulator.stop()
    result = {name: summarise(r) for name, r in runs.items()}
    mod, nod = result["mod_pegadm"], result["node"]
    checks = {"rps_ratio": pb.ratio(mod["rps"], nod["rps"]),
              "httpd_static_vs_node": pb.ratio(result["httpd_static"]["rps"], nod["rps"]),
              "p99_lower": mod["p99_us"] < nod["p99_us"],
              "rss_lower": mod["rss_kb"] < nod["rss_kb"]}
    met = checks["rps_ratio"] >= 2 and checks["p99_lower"] and checks["rss_lower"]
    pb.log("mod_pegadm/node: %s (target >= 2); met: %s" % (checks, met))
    pb.save_result("vs_node", {
        "quick": args.quick, "users": USERS, "connections": CONNECTIONS, "workers": WORKERS,
        "rounds": rounds, "seconds": seconds, "variants": result, "checks": checks,
        "target_rps_ratio": 2, "met": met, "node_warm_passes": passes,
        "creates_during_runs": creates_during, "crashes": crashes,
        "node_version": pb.machine()["node"],
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
