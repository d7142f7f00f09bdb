#!/usr/bin/python3
"""Figure 1: the cached session endpoint against httpd serving a static JSON
file of the same size, behind the same authentication, same server, same run.

Both locations sit behind identical, cheap Basic authentication (see
AUTH_LINES in lib/pegabench.py), so the ratio of requests per second is the
module's own cost. wrk rotates over many distinct users; every user's
session is created before measuring. Target: ratio >= 0.95.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

# PEGADM_BENCH_USERS=100000 measures the same with that many customers,
# each child's local cache sized for all of them (its default keeps 10,000)
USERS = int(os.environ.get("PEGADM_BENCH_USERS", "1000"))
LOCAL_CACHE = ["PegaDMLocalCache %d" % USERS] if USERS > 10000 else []
CONNECTIONS = 32
TARGET = 0.95


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 3) if args.quick else (4, 8)
    pb.require_module()
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        emulator = pb.start_emulator(wd)
        try:
            body = (pb.pegadm_server_lines(emulator, extra=LOCAL_CACHE)
                    + pb.standard_locations(users.dbm_path))
            probe = pb.Httpd(wd, "probe", body).start()
            size = pb.session_body_size(probe, users.name(0))
            probe.stop()
            emulator.reset()
            with pb.Httpd(wd, "node", body, static_json=pb.same_size_json(size)) as server:
                filled = pb.fill(server.port, pb.SESSION_PATH, users.names())
                pb.log("sessions created:", filled)
                urls = {"static": server.url("/static/session.json"),
                        "session": server.url(pb.SESSION_PATH)}
                warmed = pb.warm(urls["session"], users.headers(), USERS, CONNECTIONS)
                result, worst, tries = pb.least_disturbed(lambda: pb.interleaved(
                    urls, users.headers(), rounds, seconds, CONNECTIONS, server=server))
                profile = pb.profile_module(server, urls["session"], users.headers(), CONNECTIONS,
                                            seconds=2 if args.quick else 4, scope="module")
                creates = emulator.create_count()
                crashes = server.crashes()
        finally:
            emulator.stop()
    value = pb.ratio(result["session"]["rps"], result["static"]["rps"])
    pb.log("session/static = %s (target >= %s)" % (value, TARGET))
    pb.save_result("session_vs_static" + ("" if USERS == 1000 else "-%d" % USERS), {
        "quick": args.quick, "users": USERS, "connections": CONNECTIONS,
        "rounds": rounds, "seconds": seconds, "body_bytes": size,
        "variants": result, "ratio": value, "target": TARGET,
        "cpu_us_added": round(result["session"]["cpu_us"] - result["static"]["cpu_us"], 1),
        "met": value is not None and value >= TARGET,
        "profile": profile, "worst_spread": worst, "tries": tries, "fill": filled,
        "warmed": warmed,
        "creates": creates, "extra_creates": creates - USERS, "crashes": crashes,
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
