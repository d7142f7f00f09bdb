#!/usr/bin/python3
"""Figure 6: two httpd nodes sharing one Redis, then one memcached (and, as
the baseline, each with its own shmcb), with requests spread over both.

Spread: wrk runs against both nodes at once over the same new customers,
each node's wrk starting half-way round the other's list, as a load
balancer spreads a customer's requests over the nodes. Counted: customers
for whom the service made more than one session (the emulator's creates),
and after the run whether both nodes hand every customer the same ID. Then
wrk again, every session cached: the pair's throughput, shared cache
against shmcb.

Worst case: for other new customers, the very first request goes to both
nodes at the same instant (one thread per node, released together by a
barrier), then both nodes are asked again. The create is claimed on the
shared cache server itself (docs/operations.md, "Concurrent first
requests"): it counts customers with two creates, customers handed two
IDs, and whether the nodes agree afterwards. bench/nodes.py does the same
on three nodes.

Target: zero customers with two creates or two session IDs, spread or
racing, over a shared cache.
"""

import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

USERS = 3000
RACE_USERS = 1000
RACERS = 16
# Customers raced at a time. More threads wait longer for Python's lock
# once the barrier releases them: with 4 groups of threads the requests of
# one customer leave within about 0.3 ms of each other (median; the run
# records it), far inside the create they race for (about 20 ms here).
RACE_GROUPS = 4
CONNECTIONS = 16  # per node


def session_id(resp):
    body = resp.read()
    if resp.status != 200:
        return None
    try:
        return json.loads(body).get("sessionId")
    except ValueError:
        return None


class Race:
    """How simultaneous first requests went: for each customer the ID each
    node answered (None: no session), how far apart the requests left
    (microseconds between the first and the last send), and how long each
    took to answer."""

    def __init__(self):
        self.ids = {}
        self.skew_us = []
        self.latency_us = []

    def summary(self):
        return {"send_skew_us": percentiles(self.skew_us),
                "latency_us": percentiles(self.latency_us)}


def percentiles(values):
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
    return {"50": pick(0.50), "99": pick(0.99), "max": round(ordered[-1], 1)}


def ask(conn, name):
    """(ID or None, the connection to use next: a new one after an error)."""
    try:
        conn.request("GET", pb.SESSION_PATH, headers={"Authorization": pb.basic_header(name)})
        return session_id(conn.getresponse()), conn
    except (OSError, http.client.HTTPException):
        conn.close()
        return None, http.client.HTTPConnection(conn.host, conn.port, timeout=60)


def ask_all(ports, names, together):
    """Asks every node (`ports`) for each of `names`; returns a Race.
    together=True: each customer's request reaches all nodes at the same
    instant, one thread per node on its own kept-alive connection, the
    threads released together by a barrier, RACE_GROUPS customers at a
    time; otherwise RACERS threads each ask the nodes one after the other."""
    race = Race()
    todo = iter(names)
    lock = threading.Lock()

    def next_name():
        with lock:
            return next(todo, None)

    def one_after_the_other():
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=60) for p in ports]
        while True:
            name = next_name()
            if name is None:
                break
            sids = []
            for i, conn in enumerate(conns):
                sid, conns[i] = ask(conn, name)
                sids.append(sid)
            with lock:
                race.ids[name] = sids
        for conn in conns:
            conn.close()

    def group():
        current = [None]
        sids = [None] * len(ports)
        sent = [0.0] * len(ports)

        def advance():  # run by the barrier once all of the group's threads wait
            if current[0] is not None:
                with lock:
                    race.ids[current[0]] = list(sids)
                    race.skew_us.append(1e6 * (max(sent) - min(sent)))
            current[0] = next_name()

        barrier = threading.Barrier(len(ports), action=advance, timeout=120)

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", ports[i], timeout=60)
            try:
                while True:
                    barrier.wait()
                    name = current[0]
                    if name is None:
                        break
                    sent[i] = time.monotonic()
                    sids[i], conn = ask(conn, name)
                    with lock:
                        race.latency_us.append(1e6 * (time.monotonic() - sent[i]))
            finally:
                conn.close()

        return [threading.Thread(target=client, args=(i,), daemon=True)
                for i in range(len(ports))]

    if together:
        threads = [t for _ in range(RACE_GROUPS) for t in group()]
    else:
        threads = [threading.Thread(target=one_after_the_other, daemon=True)
                   for _ in range(RACERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 600
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise RuntimeError("clients still asking after 600 s")
    return race


def wrk_both(nodes, headers_files, seconds):
    runs = [pb.Wrk(node.url(pb.SESSION_PATH), hf, seconds, CONNECTIONS, threads=1,
                   statuses=True).start()
            for node, hf in zip(nodes, headers_files)]
    results = [run.wait() for run in runs]
    return {"rps": round(sum(float(r["rps"]) for r in results), 1),
            "p99_us": max(float(r["percentiles_us"]["99"]) for r in results),
            "errors": {k: sum(int(r["errors"][k]) for r in results) for k in results[0]["errors"]},
            "statuses": [r["statuses"] for r in results]}


def several(counts, names):
    return sum(1 for name in names if counts.get(name, 0) > 1)


def disagreeing(answers):
    return sum(1 for sids in answers.values() if len(set(sids)) != 1 or None in sids)


def race_row(counts, names, first, again, creates_before):
    """What simultaneous first requests (`first`, a Race) and the requests
    after them (`again`) did for `names`, counts being the emulator's
    creates per customer."""
    handed = {n: set(first.ids[n] + again.ids[n]) - {None} for n in names}
    return {"customers": len(names),
            "several_creates": several(counts, names),
            "handed_two_ids_first": sum(1 for n in names
                                        if len(set(first.ids[n]) - {None}) > 1),
            "handed_two_ids": sum(1 for ids in handed.values() if len(ids) > 1),
            "failed_answers": sum(1 for n in names if None in first.ids[n] + again.ids[n]),
            "nodes_disagree_after": disagreeing(again.ids),
            "creates": sum(counts.values()) - creates_before,
            **first.summary()}


def one_cache(wd, emulator, users, kind, seconds):
    """users: the first USERS are spread, the next RACE_USERS race."""
    spread_names = users.names()[:USERS]
    race_names = users.names()[USERS:]
    rotations = [users.headers(USERS), users.headers(USERS, shift=USERS // 2)]
    emulator.reset()
    cache = pb.cache_server(kind, wd).start() if kind != "shmcb" else None
    try:
        provider = cache.provider if cache else None
        body = (pb.pegadm_server_lines(emulator, cache=provider)
                + pb.standard_locations(users.dbm_path))
        with pb.Httpd(wd, kind + "-a", body) as a, pb.Httpd(wd, kind + "-b", body) as b:
            nodes, ports = (a, b), [a.port, b.port]
            spread = wrk_both(nodes, rotations, seconds)
            after_spread = ask_all(ports, spread_names, together=False)
            cached = wrk_both(nodes, rotations, seconds)
            creates_before_race = sum(emulator.creates_per_customer().values())
            race_first = ask_all(ports, race_names, together=True)
            race_again = ask_all(ports, race_names, together=False)
            counts = emulator.creates_per_customer()
            crashes = a.crashes() + b.crashes()
    finally:
        if cache:
            cache.stop()
    row = {
        "cache": kind,
        "spread": dict(spread, customers=USERS,
                       several_creates=several(counts, spread_names),
                       nodes_disagree=disagreeing(after_spread.ids)),
        "cached": cached,
        "race": race_row(counts, race_names, race_first, race_again, creates_before_race),
        "crashes": crashes,
    }
    pb.log("%s: %s" % (kind, row))
    return row


def main():
    args = pb.cli(__doc__.splitlines()[0])
    seconds = 4 if args.quick else 10
    pb.require_module()
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS + RACE_USERS)
        emulator = pb.start_emulator(wd)
        try:
            rows = {kind: one_cache(wd, emulator, users, kind, seconds)
                    for kind in ("shmcb", "redis", "memcache")}
        finally:
            emulator.stop()
    base = rows["shmcb"]["cached"]["rps"]
    for kind in ("redis", "memcache"):
        rows[kind]["throughput_vs_shmcb"] = pb.ratio(rows[kind]["cached"]["rps"], base)
    met = all(rows[k]["spread"]["several_creates"] == 0 and rows[k]["spread"]["nodes_disagree"] == 0
              and rows[k]["race"]["several_creates"] == 0
              and rows[k]["race"]["handed_two_ids"] == 0
              and rows[k]["race"]["nodes_disagree_after"] == 0
              and not any(rows[k]["spread"]["errors"].values()) for k in ("redis", "memcache"))
    pb.save_result("two_nodes", {
        "quick": args.quick, "users": USERS, "race_users": RACE_USERS,
        "connections_per_node": CONNECTIONS, "seconds": seconds, "rows": rows, "met": met,
        "race_customers_at_a_time": RACE_GROUPS,
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
