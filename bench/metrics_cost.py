#!/usr/bin/python3
"""What the counters cost the cached request: the same build of the module
with and without them (cmake -DPEGADM_METRICS=OFF compiles the counting out),
loaded in turn into one httpd (a graceful restart switches the module, the
sessions are filled again), the cached GET /pegadm/session measured in ABBA
order, CPU time per request. Target: at most 0.2 microseconds. Also the cost
of one counter add alone (bench/micro/metrics_add_cost.c)."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

USERS = 1000
CONNECTIONS = 32
TARGET_US = 0.2
OFF_BUILD = os.path.join(pb.REPO_ROOT, "build-metrics-off")
MICRO = os.path.join(pb.BENCH_DIR, "micro", "metrics_add_cost.c")


def build_without_metrics():
    subprocess.run(["cmake", "-S", pb.REPO_ROOT, "-B", OFF_BUILD, "-DPEGADM_METRICS=OFF",
                    "-DPEGADM_BUILD_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", OFF_BUILD, "--target", "mod_pegadm"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(OFF_BUILD, "mod_pegadm.so")


def micro():
    core = os.path.join(os.path.dirname(pb.MODULE_PATH), "libpegadm_core.a")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "apr-1", "jansson", "libcrypto"],
                           capture_output=True, text=True, check=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "metrics_add_cost")
        subprocess.run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I",
                        os.path.join(pb.REPO_ROOT, "src"), MICRO, core, "-o", binary]
                       + flags + ["-lpthread"], check=True)
        return json.loads(subprocess.run([binary], capture_output=True, text=True, check=True,
                                         timeout=300).stdout)


def switch_to(server, module, names):
    """Loads module into the running server (a graceful restart) and fills
    the cache again (shmcb does not outlive the restart)."""
    pb.MODULE_PATH = module  # write_config writes the LoadModule line from it
    server.write_config()
    before = server.error_log().count("resuming normal operations")
    server.graceful()
    pb.harness.wait_for(
        lambda: server.error_log().count("resuming normal operations") > before, 30, 0.1,
        "the graceful restart")
    pb.harness.wait_for(lambda: len(server.children()) >= 2, 30, 0.1, "the new children")
    pb.fill(server.port, pb.SESSION_PATH, names)


def abba(server, modules, names, headers, rounds, seconds):
    """{variant: [its runs]}, the variants alternating A B B A, each run on
    freshly loaded children after a warm-up."""
    order = list(modules)
    runs = {name: [] for name in order}
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            switch_to(server, modules[name], names)
            url = server.url(pb.SESSION_PATH)
            pb.Wrk(url, headers, 2, CONNECTIONS).run()
            pids = server.pids()
            cpu = pb.cpu_seconds(pids)
            res = pb.Wrk(url, headers, seconds, CONNECTIONS).run()
            used = pb.cpu_seconds(pids) - cpu
            bad = sum(res["errors"].values())
            if bad:
                raise RuntimeError("%s: %d errors in %r" % (name, bad, res["errors"]))
            per_request = 1e6 * used / int(res["requests"])
            runs[name].append({"cpu_us": round(per_request, 3), "rps": float(res["rps"]),
                               "requests": int(res["requests"])})
            pb.log("  %-4s %9.0f req/s  %6.2f us CPU/req" % (name, float(res["rps"]),
                                                             per_request))
    return runs


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 3) if args.quick else (12, 6)
    pb.require_module()
    with_metrics = pb.MODULE_PATH
    without = build_without_metrics()
    adds = micro()
    pb.log("one add: %s" % adds["ns_per_add"])
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        emulator = pb.start_emulator(wd)
        server = None
        try:
            body = pb.pegadm_server_lines(emulator) + pb.standard_locations(users.dbm_path)
            server = pb.Httpd(wd, "metrics", body).start()
            runs = abba(server, {"on": with_metrics, "off": without}, users.names(),
                        users.headers(), rounds, seconds)
            crashes = server.crashes()
        finally:
            if server:
                server.stop()
            emulator.stop()
    cpu = {name: round(sum(r["cpu_us"] * r["requests"] for r in rs)
                       / sum(r["requests"] for r in rs), 3) for name, rs in runs.items()}
    # each A B (or B A) pair ran back to back: their differences show the noise
    pairs = [round(a["cpu_us"] - b["cpu_us"], 3) for a, b in zip(runs["on"], runs["off"])]
    added = round(cpu["on"] - cpu["off"], 3)
    pb.log("CPU per request: with counters %.3f us, without %.3f us: %+.3f us (target <= %s)"
           % (cpu["on"], cpu["off"], added, TARGET_US))
    pb.save_result("metrics_cost", {
        "quick": args.quick, "users": USERS, "connections": CONNECTIONS, "rounds": rounds,
        "seconds": seconds, "runs": runs, "cpu_us": cpu, "cpu_us_added": added,
        "pair_differences_us": pairs, "pair_median_us": pb.median(pairs),
        "micro": adds, "target_us": TARGET_US, "crashes": crashes,
        "met": pb.median(pairs) <= TARGET_US,
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
