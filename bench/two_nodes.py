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
nodes at the same moment (both sent before either answer is read), then
both nodes are asked again. The create is claimed on the shared cache
server itself (docs/operations.md, "Concurrent first requests"): it counts
customers with two creates, customers handed two IDs, and whether the
nodes agree afterwards.

Target: zero customers with two session IDs, spread or racing, over a
shared cache.
"""

import http.client
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

USERS = 3000
RACE_USERS = 1000
RACERS = 16
CONNECTIONS = 16  # per node


def session_id(resp):
    body = resp.read()
    return json.loads(body).get("sessionId") if resp.status == 200 else None


def ask_both(ports, names, together):
    """{name: [ID from each node]}; with together=True both nodes get the
    request before either answer is read."""
    seen = {}
    todo = iter(names)
    lock = threading.Lock()

    def worker():
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=60) for p in ports]
        while True:
            with lock:
                name = next(todo, None)
            if name is None:
                break
            headers = {"Authorization": pb.basic_header(name)}
            sids = []
            for conn in conns:
                conn.request("GET", pb.SESSION_PATH, headers=headers)
                if not together:
                    sids.append(session_id(conn.getresponse()))
            if together:
                sids = [session_id(conn.getresponse()) for conn in conns]
            with lock:
                seen[name] = sids
        for conn in conns:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return seen


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
            after_spread = ask_both(ports, spread_names, together=False)
            cached = wrk_both(nodes, rotations, seconds)
            creates_before_race = sum(emulator.creates_per_customer().values())
            race_first = ask_both(ports, race_names, together=True)
            race_again = ask_both(ports, race_names, together=False)
            counts = emulator.creates_per_customer()
            crashes = a.crashes() + b.crashes()
    finally:
        if cache:
            cache.stop()
    handed = {n: set(race_first[n] + race_again[n]) - {None} for n in race_names}
    row = {
        "cache": kind,
        "spread": dict(spread, customers=USERS,
                       several_creates=several(counts, spread_names),
                       nodes_disagree=disagreeing(after_spread)),
        "cached": cached,
        "race": {"customers": RACE_USERS,
                 "several_creates": several(counts, race_names),
                 "handed_two_ids": sum(1 for ids in handed.values() if len(ids) > 1),
                 "failed_answers": sum(1 for n in race_names
                                       if None in race_first[n] + race_again[n]),
                 "nodes_disagree_after": disagreeing(race_again),
                 "creates": sum(counts.values()) - creates_before_race},
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
              and rows[k]["race"]["nodes_disagree_after"] == 0
              and not any(rows[k]["spread"]["errors"].values()) for k in ("redis", "memcache"))
    pb.save_result("two_nodes", {
        "quick": args.quick, "users": USERS, "race_users": RACE_USERS,
        "connections_per_node": CONNECTIONS, "seconds": seconds, "rows": rows, "met": met,
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
