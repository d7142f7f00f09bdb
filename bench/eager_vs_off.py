#!/usr/bin/python3
"""Figure 2: an eager-mode SSI page against the same page with PegaDM Off,
same server, same run.

Both pages sit behind the same cheap Basic authentication; every user's
session exists before measuring, so the eager page pays the cached lookup
and the export of two variables. wrk rotates over many distinct users.
Target: ratio of requests per second >= 0.95.
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

# PEGADM_BENCH_USERS=100000 measures the same with that many customers,
# each child's local cache sized for all of them (its default keeps 10,000)
USERS = int(os.environ.get("PEGADM_BENCH_USERS", "1000"))
LOCAL_CACHE = ["PegaDMLocalCache %d" % USERS] if USERS > 10000 else []
CONNECTIONS = 32
TARGET = 0.95


def exported_session(page):
    found = re.search(rb'pegadmSession = "([^"]*)"', page)
    return found.group(1).decode() if found else None


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
            with pb.Httpd(wd, "node", body) as server:
                filled = pb.fill(server.port, "/eager/page.shtml", users.names())
                pb.log("sessions created:", filled)
                eager = server.get("/eager/page.shtml", users.name(1))
                off = server.get("/plain/page.shtml", users.name(1))
                urls = {"off": server.url("/plain/page.shtml"),
                        "eager": server.url("/eager/page.shtml")}
                warmed = pb.warm(urls["eager"], users.headers(), USERS, CONNECTIONS)
                result, worst, tries = pb.least_disturbed(lambda: pb.interleaved(
                    urls, users.headers(), rounds, seconds, CONNECTIONS, server=server))
                profile = pb.profile_module(server, urls["eager"], users.headers(), CONNECTIONS,
                                            seconds=2 if args.quick else 4, scope="module")
                creates = emulator.create_count()
                crashes = server.crashes()
        finally:
            emulator.stop()
    # the eager page carries the session ID; SSI echoes an unset one as "(none)"
    exported = (exported_session(eager.body) not in (None, "(none)")
                and exported_session(off.body) == "(none)")
    value = pb.ratio(result["eager"]["rps"], result["off"]["rps"])
    pb.log("eager/off = %s (target >= %s); session exported: %s" % (value, TARGET, exported))
    pb.save_result("eager_vs_off" + ("" if USERS == 1000 else "-%d" % USERS), {
        "quick": args.quick, "users": USERS, "connections": CONNECTIONS,
        "rounds": rounds, "seconds": seconds, "page_bytes": [len(eager.body), len(off.body)],
        "session_exported": exported, "variants": result, "ratio": value, "target": TARGET,
        "cpu_us_added": round(result["eager"]["cpu_us"] - result["off"]["cpu_us"], 1),
        "met": value is not None and value >= TARGET and exported,
        "profile": profile, "worst_spread": worst, "tries": tries, "fill": filled,
        "warmed": warmed,
        "creates": creates, "extra_creates": creates - USERS, "crashes": crashes,
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
