"""The pegadm-status handler and the mod_status section: counts shared by all
child processes that survive a graceful restart, in a format that Debian's
real Prometheus server ingests."""

import json
import os
import shutil
import subprocess
import urllib.parse

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_session, portal_conf, same_origin_request, session_get

STATUS_PATH = "/pegadm/status"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
MOD_STATUS = 'LoadModule status_module "%s/mod_status.so"' % harness.APACHE_MODULES


def status_site(dm, *extra, blocks=()):
    return portal_conf(
        dm,
        harness.location(STATUS_PATH, "SetHandler pegadm-status", auth=False),
        *blocks,
        server_extra=list(extra))


def status_json(server):
    resp = server.request("GET", STATUS_PATH)
    assert resp.status == 200, resp
    assert resp.header("Content-Type") == "application/json", resp
    assert resp.header("Cache-Control") == "no-store", resp
    return resp.json()


def prometheus_text(server):
    resp = server.request("GET", STATUS_PATH + "?format=prometheus")
    assert resp.status == 200, resp
    assert resp.header("Content-Type").startswith("text/plain; version=0.0.4"), resp
    assert resp.header("Cache-Control") == "no-store", resp
    return resp.text


def widget_doc(doc, widget=harness.WIDGET_ID):
    found = [w for w in doc["widgets"] if w["widget"] == widget]
    assert len(found) == 1, doc
    return found[0]


def test_json_and_prometheus_answers(module_httpd, dm):
    server = module_httpd(status_site(dm))
    assert_session(session_get(server, "alice"))
    assert_session(session_get(server, "alice"))
    assert same_origin_request(server, "DELETE", "alice").status == 204
    doc = status_json(server)
    assert doc["version"] == "0.1.0"
    w = widget_doc(doc)
    assert w["creates"]["ok"] == 1
    assert w["privateDataPushes"]["ok"] == 1
    assert w["cacheLookups"] == {"hit": 1, "miss": 1, "error": 0}
    assert w["forgets"] == 1
    assert w["breakerOpen"] is False
    hist = w["upstreamSeconds"]["create"]
    assert hist["count"] == 1 and hist["buckets"]["+Inf"] == 1 and hist["sum"] > 0
    text = prometheus_text(server)
    line = 'pegadm_creates_total{widget="%s",outcome="ok"} 1' % harness.WIDGET_ID
    assert line in text.splitlines(), text
    assert 'pegadm_build_info{version="0.1.0"} 1' in text
    assert server.request("POST", STATUS_PATH).status == 405


def test_promtool_accepts_the_text_format(module_httpd, dm):
    server = module_httpd(status_site(dm))
    assert_session(session_get(server, "alice"))
    text = prometheus_text(server)
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = text.replace("pegadm_forgets_total{", "pegadm_forgets_total{{", 1)
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=broken.encode(),
                          capture_output=True, timeout=30)
    assert proc.returncode != 0, "promtool accepted a broken exposition"


def users_on_children(server, users):
    """Each user's first GET on a kept connection of its own: under prefork,
    one child each."""
    conns = [harness.KeptConnection(server) for _ in users]
    try:
        for conn, user in zip(conns, users):
            assert_session(conn.request("GET", harness.SESSION_PATH, user))
            assert_session(conn.request("GET", harness.SESSION_PATH, user))
        pids = harness.children_serving(server, conns, 2 * len(users))
    finally:
        for conn in conns:
            conn.close()
    harness.assert_one_child_each(pids)
    return set.union(*pids.values())


def test_counts_are_summed_over_children_and_survive_a_graceful_restart(module_httpd, dm):
    first, later = ["u%d" % i for i in range(4)], ["v%d" % i for i in range(3)]
    server = module_httpd(status_site(dm, *harness.PIDS_LOG), users=first + later,
                          mpm="prefork")
    pids_before = users_on_children(server, first)
    w = widget_doc(status_json(server))
    assert w["creates"]["ok"] == 4
    assert w["cacheLookups"] == {"hit": 4, "miss": 4, "error": 0}

    harness.graceful_restart(server)
    pids_after = users_on_children(server, later)
    assert not pids_before & pids_after, "the same children served both generations"
    w = widget_doc(status_json(server))
    assert w["creates"]["ok"] == 7
    assert w["privateDataPushes"]["ok"] == 7
    assert w["cacheLookups"] == {"hit": 7, "miss": 7, "error": 0}
    assert w["upstreamSeconds"]["create"]["count"] == 7
    assert len(dm.state()["creates"]) == 7


def test_status_holds_no_customer_or_session_id(module_httpd, dm):
    users = ["alice", "bob", "carol.customer-4711"]
    server = module_httpd(status_conf(dm), users=users)
    sids = [assert_session(session_get(server, u)) for u in users]
    outputs = [server.request("GET", STATUS_PATH).text, prometheus_text(server),
               server.request("GET", "/server-status").text,
               server.request("GET", "/server-status?auto").text]
    for text in outputs:
        for secret in users + sids:
            assert secret not in text, (secret, text)
    assert widget_doc(json.loads(outputs[0]))["creates"]["ok"] == 3


def status_conf(dm):
    """With mod_status loaded (the harness's module list has none)."""
    return MOD_STATUS + "\n" + status_site(
        dm, blocks=[harness.location("/server-status", "SetHandler server-status",
                                     auth=False)])


def test_mod_status_shows_the_section_and_auto_lines(module_httpd, dm):
    server = module_httpd(status_conf(dm))
    assert_session(session_get(server, "alice"))
    assert_session(session_get(server, "alice"))
    auto = server.request("GET", "/server-status?auto")
    assert auto.status == 200, auto
    lines = dict(line.split(": ", 1) for line in auto.text.splitlines() if ": " in line)
    assert lines["PegaDMVersion"] == "0.1.0", auto.text
    assert lines["PegaDMCreates"] == "1"
    assert lines["PegaDMCacheHits"] == "1"
    assert lines["PegaDMCacheMisses"] == "1"
    assert lines["PegaDMBreakersOpen"] == "0"
    assert "alice" not in auto.text
    page = server.request("GET", "/server-status")
    assert page.status == 200, page
    assert "<h2>mod_pegadm 0.1.0</h2>" in page.text
    assert harness.WIDGET_ID in page.text
    assert "alice" not in page.text


# --------------------------------------------------------------------------
# Debian's Prometheus server scrapes the handler
# --------------------------------------------------------------------------

class Prometheus:
    def __init__(self, workdir, target_port):
        self.root = harness.make_public_dir(workdir, "prometheus-")
        self.port = harness.free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": "pegadm",
                "metrics_path": STATUS_PATH,
                "params": {"format": ["prometheus"]},
                "static_configs": [{"targets": ["127.0.0.1:%d" % target_port]}],
            }],
        }
        # JSON is YAML: no YAML writer needed
        self.config_path = harness.write_file(os.path.join(self.root, "prometheus.yml"),
                                              json.dumps(config, indent=2))
        self.log_path = os.path.join(self.root, "prometheus.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config_path,
                 "--storage.tsdb.path=" + os.path.join(self.root, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def query(self, expr):
        """The instant vector of expr, as [(labels, value)]; [] until ready."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            resp = harness.http_request(self.port, "GET", path, timeout=5)
        except OSError:
            return []
        if resp.status != 200:
            return []
        doc = resp.json()
        assert doc["status"] == "success", doc
        return [(r["metric"], float(r["value"][1])) for r in doc["data"]["result"]]

    def wait_value(self, expr, want, timeout=30):
        def matches():
            found = self.query(expr)
            return found if found and all(v == want for _, v in found) else None
        try:
            return harness.wait_for(matches, timeout, 0.25, "%s == %s" % (expr, want))
        except TimeoutError:
            raise AssertionError("%s: %r\n%s" % (expr, self.query(expr), self.log()))

    def log(self):
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        harness.remove_tree(self.root)


@pytest.fixture
def prometheus_for(workdir):
    started = []

    def start(server):
        prom = Prometheus(workdir, server.port)
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()


def test_prometheus_ingests_the_series(module_httpd, dm, prometheus_for):
    server = module_httpd(status_site(dm), users=["alice", "bob", "carol"])
    for user in ("alice", "bob"):
        assert_session(session_get(server, user))
    assert_session(session_get(server, "alice"))
    dm.set_mode("http500", applies_to="create")
    assert session_get(server, "carol").status == 503
    prom = prometheus_for(server)
    w = 'widget="%s"' % harness.WIDGET_ID
    prom.wait_value('up{job="pegadm"}', 1)
    prom.wait_value('pegadm_creates_total{%s,outcome="ok"}' % w, 2)
    prom.wait_value('pegadm_creates_total{%s,outcome="http_error"}' % w, 1)
    prom.wait_value('pegadm_private_data_pushes_total{%s,outcome="ok"}' % w, 2)
    prom.wait_value('pegadm_cache_lookups_total{%s,result="hit"}' % w, 1)
    prom.wait_value('pegadm_cache_lookups_total{%s,result="miss"}' % w, 2 + 1)
    prom.wait_value('pegadm_forgets_total{%s}' % w, 0)
    prom.wait_value('pegadm_rate_limited_total{%s}' % w, 0)
    prom.wait_value('pegadm_breaker_open{%s}' % w, 0)
    prom.wait_value('pegadm_upstream_seconds_count{%s,call="create"}' % w, 3)
    prom.wait_value('pegadm_upstream_seconds_bucket{%s,call="private_data",le="+Inf"}' % w, 2)
    prom.wait_value('pegadm_build_info{version="0.1.0"}', 1)
    # a histogram Prometheus can compute with: a quantile of the calls
    found = prom.query('histogram_quantile(0.5, pegadm_upstream_seconds_bucket{call="create"})')
    assert found and 0 < found[0][1] <= 10, found
    # and a later count reaches it at the next scrape
    assert_session(session_get(server, "alice"))
    prom.wait_value('pegadm_cache_lookups_total{%s,result="hit"}' % w, 2)


def test_the_breaker_gauge_and_refusals(module_httpd, dm):
    users = ["u%d" % i for i in range(5)]
    server = module_httpd(status_site(dm, "PegaDMBreakerThreshold 2",
                                      "PegaDMBreakerCooldown 1"), users=users)
    dm.set_mode("http500", applies_to="create")
    for user in users[:2]:
        assert session_get(server, user).status == 503
    assert session_get(server, users[2]).status == 503  # refused: no call
    w = widget_doc(status_json(server))
    assert w["breakerOpen"] is True
    assert w["creates"]["http_error"] == 2 and w["creates"]["breaker_open"] == 1
    assert w["upstreamSeconds"]["create"]["count"] == 2, "a refusal makes no call"
    dm.set_mode("ok")
    harness.wait_for(lambda: session_get(server, users[3]).status == 200, 5, 0.3,
                     "the probe after the cool-down")
    w = widget_doc(status_json(server))
    assert w["breakerOpen"] is False and w["creates"]["ok"] == 1


def test_a_restart_keeping_the_parent_keeps_the_counts(module_httpd, dm):
    """`apache2 -k restart` (SIGHUP) replaces every child but not the parent,
    which holds the counters."""
    server = module_httpd(status_site(dm))
    assert_session(session_get(server, "alice"))
    before = server.error_log().count("resuming normal operations")
    proc = subprocess.run([harness.APACHE_BIN, "-f", server.conf_path, "-k", "restart"],
                          capture_output=True, env=harness.apache_env(server.env), timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    harness.wait_for(lambda: server.error_log().count("resuming normal operations") > before,
                     10, what="the restart")
    harness.wait_for(lambda: server.request("GET", "/index.html").status == 200, 10,
                     what="the new children")
    assert_session(session_get(server, "bob"))
    assert widget_doc(status_json(server))["creates"]["ok"] == 2
