#!/usr/bin/python3
"""Figure 7 (issue 5's load test): 60 s of wrk at 64 connections against the
session endpoint and 64 against an eager SSI page, over 100,000 distinct
users (so new customers keep arriving all along), while the service
alternates between healthy and failing every 3 seconds (the emulator's flap
mode, failing by resetting connections), with one `apache2 -k graceful`
half-way.

Passes when: no 5xx but the intended 503 of the session endpoint (the eager
page is always 200), no connection errors, no child crash in the error log,
and the children's memory stable: under 5% growth after warm-up, within each
generation of children and across the graceful restart. The memory judged is
what the children hold privately (heap, stacks), where a leak would show;
their resident size also counts the shared session and authentication
caches, which fill as the 100,000 customers arrive and are bounded by the
caches' sizes (recorded and plotted too). A 20 s run of the same load
without the restart comes first, to tell what the restart adds.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

USERS = 100000
CONNECTIONS = 64  # per target
FLAP_MS = 3000
FAIL_MODE = "reset"
WARMUP = 15
GROWTH_LIMIT = 0.05
# The default cool-down (30 s) would hold the breaker open through several
# healthy phases; a short one makes it open and close many times.
SERVER_EXTRA = ("PegaDMBreakerCooldown 2",)


def mean_between(samples, key, start, end):
    values = [s[key] for s in samples if start <= s["t"] < end]
    return sum(values) / len(values) if values else None


def growth(samples, key, base, later):
    a, b = mean_between(samples, key, *base), mean_between(samples, key, *later)
    return round(b / a - 1, 4) if a and b else None


def sample(server, started):
    children = server.children()
    return {"t": round(time.monotonic() - started, 1), "children": len(children),
            "children_rss_kb": pb.rss_kb(children),
            "children_private_kb": pb.private_kb(children),
            "parent_rss_kb": pb.rss_kb([server.proc.pid])}


def load(server, users, seconds):
    """wrk against the session endpoint and the eager page at once."""
    return {
        "session": pb.Wrk(server.url(pb.SESSION_PATH), users.headers(), seconds,
                          CONNECTIONS, threads=1, statuses=True).start(),
        "eager": pb.Wrk(server.url("/eager/page.shtml"), users.headers(shift=USERS // 2),
                        seconds, CONNECTIONS, threads=1, statuses=True).start(),
    }


def main():
    args = pb.cli(__doc__.splitlines()[0])
    seconds = 20 if args.quick else 60
    graceful_at = seconds // 2
    pb.require_module()
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        emulator = pb.start_emulator(wd)
        try:
            body = (pb.pegadm_server_lines(emulator, extra=SERVER_EXTRA)
                    + pb.standard_locations(users.dbm_path))
            with pb.Httpd(wd, "control", body) as server:
                # the same load without the restart, for what the restart adds
                emulator.set_mode("flap", period_ms=FLAP_MS, fail_mode=FAIL_MODE)
                control = {name: run.wait()
                           for name, run in load(server, users, seconds // 3).items()}
                control_crashes = server.crashes()
            emulator.reset()
            with pb.Httpd(wd, "node", body) as server:
                emulator.set_mode("flap", period_ms=FLAP_MS, fail_mode=FAIL_MODE)
                started = time.monotonic()
                runs = load(server, users, seconds)
                samples, graceful_done = [], None
                while time.monotonic() - started < seconds - 1:
                    samples.append(sample(server, started))
                    if graceful_done is None and time.monotonic() - started >= graceful_at:
                        server.graceful()
                        graceful_done = round(time.monotonic() - started, 1)
                    time.sleep(1)
                results = {name: run.wait() for name, run in runs.items()}
                emulator.set_mode("ok")
                state = emulator.state()
                log_text = server.error_log()
                crashes = server.crashes()
        finally:
            emulator.stop()
    verdict = judge(results, crashes, samples, seconds, graceful_at)
    verdict["control_without_graceful"] = {
        "seconds": seconds // 3, "statuses": {n: r["statuses"] for n, r in control.items()},
        "connection_errors": {k: sum(int(r["errors"][k]) for r in control.values())
                              for k in ("connect", "read", "write", "timeout")},
        "crashes": control_crashes}
    pb.log("load test: %s" % verdict)
    pb.save_result("load_flap", dict(verdict, **{
        "quick": args.quick, "seconds": seconds, "users": USERS,
        "connections_per_target": CONNECTIONS, "flap_ms": FLAP_MS, "fail_mode": FAIL_MODE,
        "server_extra": list(SERVER_EXTRA), "graceful_at": graceful_done,
        "wrk": results, "samples": samples, "crashes": crashes,
        "emulator": {"creates": len(state["creates"]), "faults": len(state["faults"]),
                     "connections": state["connections"]},
        "log_messages": count_messages(log_text),
        "load_before": load_before, "load_after": pb.loadavg(),
    }))


def judge(results, crashes, samples, seconds, graceful_at):
    session, eager = results["session"]["statuses"], results["eager"]["statuses"]
    unintended = {("session", c): n for c, n in session.items() if c not in ("200", "503")}
    unintended.update({("eager", c): n for c, n in eager.items() if c != "200"})
    errors = {k: sum(int(r["errors"][k]) for r in results.values())
              for k in ("connect", "read", "write", "timeout")}
    end = seconds - 1
    windows = {
        "first_children": ((WARMUP, WARMUP + 4), (graceful_at - 4, graceful_at)),
        "second_children": ((end - 15, end - 11), (end - 4, end)),
        "across_graceful": ((WARMUP, WARMUP + 4), (end - 4, end)),
    }
    growths = {name: growth(samples, "children_private_kb", *w) for name, w in windows.items()}
    rss_growths = {name: growth(samples, "children_rss_kb", *w) for name, w in windows.items()}
    stable = all(g is not None and g < GROWTH_LIMIT for g in growths.values())
    return {
        "statuses": {"session": session, "eager": eager},
        "unintended_statuses": {"%s %s" % k: n for k, n in unintended.items()},
        "connection_errors": errors, "private_growth": growths, "rss_growth": rss_growths,
        "growth_limit": GROWTH_LIMIT,
        "requests": {name: int(r["requests"]) for name, r in results.items()},
        "met": not unintended and not any(errors.values()) and not crashes and stable,
    }


def count_messages(text):
    counts = {}
    for line in text.splitlines():
        for word in line.split():
            if word.startswith(("PEGADM", "AH")) and word.endswith(":"):
                counts[word[:-1]] = counts.get(word[:-1], 0) + 1
    return counts


if __name__ == "__main__":
    main()
