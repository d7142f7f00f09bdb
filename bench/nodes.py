#!/usr/bin/python3
"""Figure 6b: simultaneous first requests on three nodes, one per MPM
(event, worker, prefork), sharing one memcached, then one Redis.

New customers whose very first request reaches all three nodes at the same
instant (one thread per node, released together by a barrier, a few
customers at a time: two_nodes.RACE_GROUPS), then every node is asked
again. Counted: customers for whom the service made more than one session
(the emulator's creates), customers
handed two different IDs in their first answers (and in any answer), and
customers the nodes disagree on afterwards. The create is claimed on the
shared cache server itself (docs/operations.md, "Concurrent first requests").

Target: 0 / 0 / 0 on both caches.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402
from two_nodes import RACE_GROUPS, ask_all, race_row  # noqa: E402

MPMS = ("event", "worker", "prefork")
CACHES = ("memcache", "redis")


def one_cache(wd, emulator, users, kind):
    emulator.reset()
    cache = pb.cache_server(kind, wd).start()
    try:
        body = (pb.pegadm_server_lines(emulator, cache=cache.provider)
                + pb.standard_locations(users.dbm_path))
        nodes = []
        try:
            for mpm in MPMS:
                nodes.append(pb.Httpd(wd, "%s-%s" % (kind, mpm), body, mpm=mpm).start())
            ports = [node.port for node in nodes]
            first = ask_all(ports, users.names(), together=True)
            again = ask_all(ports, users.names(), together=False)
            counts = emulator.creates_per_customer()
            crashes = [c for node in nodes for c in node.crashes()]
        finally:
            for node in nodes:
                node.stop()
    finally:
        cache.stop()
    row = dict(race_row(counts, users.names(), first, again, 0), cache=kind,
               nodes=list(MPMS), crashes=crashes)
    pb.log("%s: %s" % (kind, row))
    return row


def main():
    args = pb.cli(__doc__.splitlines()[0])
    customers = 300 if args.quick else 1000
    pb.require_module()
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, customers)
        emulator = pb.start_emulator(wd)
        try:
            rows = {kind: one_cache(wd, emulator, users, kind) for kind in CACHES}
        finally:
            emulator.stop()
    met = all(row["several_creates"] == 0 and row["handed_two_ids"] == 0
              and row["nodes_disagree_after"] == 0 and row["failed_answers"] == 0
              and not row["crashes"] for row in rows.values())
    pb.save_result("nodes", {
        "quick": args.quick, "customers": customers, "nodes": list(MPMS), "rows": rows,
        "customers_at_a_time": RACE_GROUPS,
        "met": met, "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
