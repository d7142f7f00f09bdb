#!/usr/bin/python3
"""Figure 7's memory, looked at from the inside: httpd in one process under
heaptrack, the load test's load (both targets, the service flapping,
`PegaDMCacheTTL 60` so that new sessions keep being made), for a short and
a five times longer run. httpd is then killed outright, so nothing is freed
on the way out: what heaptrack finds still allocated is what the run left
behind. A leak grows with the number of sessions made; the heap of a module
that frees what it takes stays the same.

Passes when the heap still allocated after the long run is no more than
after the short one (plus 10% and 256 KiB for what happens to be in flight
at the kill).
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402
from pegadm_harness import apache_env, port_answers, stop_process, wait_for  # noqa: E402

USERS = 100000
CONNECTIONS = 32  # per target: one process, fewer threads busy than figure 7's two children
FLAP_MS = 3000
EXTRA = ("PegaDMBreakerCooldown 2", "PegaDMCacheTTL 60")
UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_of(text, label):
    match = re.search(r"^%s: ([0-9.]+)([BKMG])" % re.escape(label), text, re.M)
    return int(float(match.group(1)) * UNITS[match.group(2)]) if match else None


def traced_pid(conf_path):
    """The httpd process heaptrack started (the script itself is a shell)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if argv[0] == pb.APACHE_BIN.encode() and conf_path.encode() in argv:
                return int(entry)
    return None


def profile(wd, emulator, users, seconds):
    body = pb.pegadm_server_lines(emulator, extra=EXTRA) + pb.standard_locations(users.dbm_path)
    server = pb.Httpd(wd, "heap-%d" % seconds, body, run_as_www_data=False)
    server.write_config()
    out = os.path.join(wd, "heaptrack-%d" % seconds)
    log = open(os.path.join(wd, "heaptrack-%d.log" % seconds), "w")
    tracer = subprocess.Popen(["heaptrack", "-o", out, pb.APACHE_BIN, "-f", server.conf_path, "-X"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env=apache_env(server.env))
    try:
        wait_for(lambda: port_answers(server.port), 120, 0.2, "httpd under heaptrack")
        emulator.reset()
        emulator.set_mode("flap", period_ms=FLAP_MS, fail_mode="reset")
        runs = [pb.Wrk(server.url(pb.SESSION_PATH), users.headers(), seconds, CONNECTIONS,
                       threads=1, statuses=True).start(),
                pb.Wrk(server.url("/eager/page.shtml"), users.headers(shift=USERS // 2), seconds,
                       CONNECTIONS, threads=1, statuses=True).start()]
        results = [run.wait() for run in runs]
        emulator.set_mode("ok")
        creates = emulator.create_count()
        pid = traced_pid(server.conf_path)
        if pid is None:
            raise RuntimeError("httpd under heaptrack is gone before the kill")
        os.kill(pid, signal.SIGKILL)
        tracer.wait(timeout=600)
    finally:
        if tracer.poll() is None:
            stop_process(tracer, group=True, timeout=pb.STOP_TIMEOUT)
        log.close()
    report = subprocess.run(["heaptrack_print", "-f", out + ".zst", "--print-leaks", "0",
                             "--print-peaks", "0", "--print-allocators", "0",
                             "--print-temporary", "0"], capture_output=True, text=True,
                            timeout=600).stdout
    result = {"seconds": seconds, "creates": creates,
              "requests": sum(int(r["requests"]) for r in results),
              "heap_live_at_end": size_of(report, "total memory leaked"),
              "heap_peak": size_of(report, "peak heap memory consumption")}
    pb.log("heap profile: %s" % result)
    return result


def main():
    args = pb.cli(__doc__.splitlines()[0])
    lengths = (10, 30) if args.quick else (60, 300)
    pb.require_module()
    if not subprocess.run(["sh", "-c", "command -v heaptrack"], capture_output=True).stdout:
        sys.exit("heaptrack is not installed (bench/setup installs it)")
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        emulator = pb.start_emulator(wd)
        try:
            short, long_ = (profile(wd, emulator, users, s) for s in lengths)
        finally:
            emulator.stop()
    bound = short["heap_live_at_end"] * 1.10 + 256 * 1024
    met = long_["heap_live_at_end"] is not None and long_["heap_live_at_end"] <= bound
    pb.save_result("heap_profile", {
        "quick": args.quick, "short": short, "long": long_, "met": met,
        "connections_per_target": CONNECTIONS, "server_extra": list(EXTRA),
        "load_before": load_before, "load_after": pb.loadavg(), "time": time.time(),
    })


if __name__ == "__main__":
    main()
