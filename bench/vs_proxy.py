#!/usr/bin/python3
"""Figure 4b: mod_pegadm against the deployment an Apache portal would
otherwise use: httpd with the same authentication, mod_proxy to the
Node.js/Express implementation of the flow (bench/node-express, a 2-worker
cluster) that reads the user from a request header httpd sets.

The proxy httpd checks Basic credentials exactly as the mod_pegadm httpd
does (mod_authn_dbm behind mod_authn_socache, {SHA} hashes), drops any
X-Remote-User a client sends (`RequestHeader unset ... early`), sets it to
the authenticated user, and passes GET /pegadm/session over mod_proxy_http's
pool of kept-alive connections to the cluster. Both deployments answer the
same 1,000 users over 32 connections, every session cached beforehand, in
ABBA runs (medians).
Targets: mod_pegadm at least 3.5x the requests per second, lower p99, less
memory (the sum of RSS over all processes of each deployment: httpd's, plus
the Node.js processes for the proxy).
"""

import http.client
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402
import vs_node  # noqa: E402

USERS = 1000
CONNECTIONS = 32
USER_HEADER = "X-Remote-User"
# Node.js closes a kept-alive connection idle for 5 s (server.keepAliveTimeout);
# httpd must stop reusing one before that, or a request sent just as Node.js
# closes it fails with a 502.
PROXY_TTL = 4


def proxy_body(users_db, node_port):
    auth = pb.AUTH_LINES.format(users_db=users_db)
    return ("RequestHeader unset %(h)s early\n"
            "<Location /pegadm/session>\n%(auth)s"
            '    RequestHeader set %(h)s "expr=%%{REMOTE_USER}"\n'
            "    ProxyPass http://127.0.0.1:%(port)d/pegadm/session ttl=%(ttl)d\n"
            "</Location>\n") % {"h": USER_HEADER, "auth": auth, "port": node_port,
                                "ttl": PROXY_TTL}


def customer_of(emulator, session_id):
    for create in emulator.state()["creates"]:
        if create["sessionId"] == session_id:
            return create["customerId"]
    return None


def check_header_forwarding(proxy, emulator, users):
    """The session the proxy hands out is the authenticated user's, whatever
    X-Remote-User the client sends; without credentials, 401."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        conn.request("GET", pb.SESSION_PATH, headers={
            "Authorization": pb.basic_header(users.name(0)), USER_HEADER: users.name(1)})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError("proxy answered %d: %r" % (resp.status, body[:200]))
        owner = customer_of(emulator, json.loads(body)["sessionId"])
        if owner != users.name(0):
            raise RuntimeError("proxy handed %s the session of %r" % (users.name(0), owner))
        conn.request("GET", pb.SESSION_PATH, headers={USER_HEADER: users.name(0)})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 401:
            raise RuntimeError("proxy answered %d without credentials" % resp.status)
    finally:
        conn.close()


def measure(name, deployment, headers, seconds):
    """One wrk run: vs_node.measure's figures plus the CPU time of httpd's
    processes (and of Node.js's, for the proxy) per request."""
    url, httpd, node = deployment
    pids = httpd.pids() + (node.pids() if node else [])
    httpd_cpu = pb.cpu_seconds(httpd.pids())
    node_cpu = pb.cpu_seconds(node.pids()) if node else 0.0
    run = vs_node.measure(name, url, pids, headers, seconds)
    requests = run["rps"] * seconds
    run["httpd_cpu_us"] = round(1e6 * (pb.cpu_seconds(httpd.pids()) - httpd_cpu) / requests, 1)
    run["node_cpu_us"] = (round(1e6 * (pb.cpu_seconds(node.pids()) - node_cpu) / requests, 1)
                          if node else 0.0)
    pb.log("  %-6s httpd CPU %.1f us/req, Node.js CPU %.1f us/req" % (
        name, run["httpd_cpu_us"], run["node_cpu_us"]))
    return run


def summarise(runs):
    out = vs_node.summarise(runs)
    for key in ("httpd_cpu_us", "node_cpu_us"):
        out[key] = pb.median([r[key] for r in runs])
    out["cpu_us"] = round(out["httpd_cpu_us"] + out["node_cpu_us"], 1)
    return out


def main():
    args = pb.cli(__doc__.splitlines()[0])
    rounds, seconds = (2, 3) if args.quick else (4, 10)
    pb.require_module()
    if not os.path.isdir(os.path.join(vs_node.NODE_DIR, "node_modules")):
        sys.exit("bench/node-express/node_modules is missing: run bench/setup first")
    load_before = pb.wait_until_quiet()
    with pb.Workdir() as wd:
        users = pb.Users(wd, USERS)
        headers = users.headers()
        emulator = pb.start_emulator(wd)
        try:
            body = pb.pegadm_server_lines(emulator) + pb.standard_locations(users.dbm_path)
            with pb.Httpd(wd, "pegadm", body) as httpd, \
                    vs_node.NodeServer(wd, emulator, users, user_header=USER_HEADER) as node, \
                    pb.Httpd(wd, "proxy", proxy_body(users.dbm_path, node.port),
                             load_pegadm=False,
                             modules=("headers", "proxy", "proxy_http")) as proxy:
                pb.fill(httpd.port, pb.SESSION_PATH, users.names())
                # every worker's Map filled directly, one connection at a time
                passes = vs_node.warm_node(node, emulator, users,
                                           headers_of=lambda name: {USER_HEADER: name})
                pb.log("node warm after %d passes" % passes)
                before = emulator.create_count()
                through_proxy = pb.fill(proxy.port, pb.SESSION_PATH, users.names())
                if through_proxy["status"] != {"200": USERS}:
                    raise RuntimeError("through the proxy: %r" % through_proxy)
                check_header_forwarding(proxy, emulator, users)
                creates_through_proxy = emulator.create_count() - before
                targets = {"mod_pegadm": (httpd.url(pb.SESSION_PATH), httpd, None),
                           "proxy": (proxy.url(pb.SESSION_PATH), proxy, node)}
                for url, _, _ in targets.values():
                    pb.Wrk(url, headers, 3, CONNECTIONS).run()
                runs = {name: [] for name in targets}
                creates_before = emulator.create_count()
                for r in range(rounds):
                    for name in (list(targets) if r % 2 == 0 else list(targets)[::-1]):
                        runs[name].append(measure(name, targets[name], headers, seconds))
                creates_during = emulator.create_count() - creates_before
                crashes = httpd.crashes() + proxy.crashes()
        finally:
            emulator.stop()
    result = {name: summarise(r) for name, r in runs.items()}
    mod, prx = result["mod_pegadm"], result["proxy"]
    checks = {"rps_ratio": pb.ratio(mod["rps"], prx["rps"]),
              "p99_lower": mod["p99_us"] < prx["p99_us"],
              "rss_lower": mod["rss_kb"] < prx["rss_kb"],
              "no_creates_during_runs": creates_during == 0}
    met = (checks["rps_ratio"] >= 3.5 and checks["p99_lower"] and checks["rss_lower"]
           and checks["no_creates_during_runs"] and not crashes)
    pb.log("mod_pegadm / httpd + mod_proxy + node: %s (target >= 3.5x); met: %s"
           % (checks, met))
    pb.save_result("vs_proxy", {
        "quick": args.quick, "users": USERS, "connections": CONNECTIONS,
        "workers": vs_node.WORKERS, "rounds": rounds, "seconds": seconds, "variants": result,
        "checks": checks, "target_rps_ratio": 3.5, "met": met, "node_warm_passes": passes,
        "creates_through_proxy_fill": creates_through_proxy,
        "creates_during_runs": creates_during, "crashes": crashes,
        "user_header": USER_HEADER, "proxy_ttl_s": PROXY_TTL,
        "node_version": pb.machine()["node"],
        "load_before": load_before, "load_after": pb.loadavg(),
    })


if __name__ == "__main__":
    main()
