"""httpd in single-process mode (-X) under valgrind's memcheck, through a
mix of requests that covers the module's paths: sessions made, cached,
renewed and forgotten, eager pages, pages the tag goes into, the bootstrap script, refusals, every
kind of upstream failure and the circuit breaker. No memory error and no
definite leak may show. (A graceful restart needs httpd's parent process,
which -X does without; the sanitizer pass covers it.)"""

import os
import re
import signal
import time

import pegadm_harness as harness
from pegadm_harness import location, parse_vars, same_origin_request, session_get

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPRESSIONS = os.path.join(HERE, "httpd.supp")
VALGRIND_STOP_TIMEOUT = 120
BREAKER_PATH = "/breaker/session"


class ValgrindHttpd(harness.Httpd):
    """One process does everything: no child can hide an error."""

    start_timeout = 120

    def command(self):
        self.valgrind_log = os.path.join(self.root, "logs", "valgrind.%p.log")
        return ["valgrind", "--tool=memcheck", "--leak-check=full",
                "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                "--error-exitcode=99", "--num-callers=40", "--vgdb=no",
                "--suppressions=" + SUPPRESSIONS, "--log-file=" + self.valgrind_log,
                harness.APACHE_BIN, "-X", "-f", self.conf_path]

    def stop_and_wait(self):
        """SIGTERM, then wait for valgrind's leak check; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(VALGRIND_STOP_TIMEOUT)
        finally:
            self.stop()

    def valgrind_reports(self):
        logs = os.path.dirname(self.valgrind_log)
        return {name: self.read(os.path.join(logs, name)) for name in sorted(os.listdir(logs))
                if name.startswith("valgrind.")}


JSON = {"Content-Type": "application/json"}


INJECT_PAGES = {
    "page.html": b"<html><body><p>x</p></body></html>\n",
    # "</body>" split by the include: the filter holds "</bo" back
    "page.shtml": b'<html><body><p>x</p></bo<!--#include virtual="dy.html" -->',
    "dy.html": b"dy></html>\n",
    # the only </body> is inert: the tag goes at the end
    "template.html": b"<html><body><template></body></template><svg><![CDATA[x]]></svg>",
    # longer than what the filter keeps before passing it on
    "long.html": b"<html><body>" + b"<p>line</p>\n" * 20000 + b"</body></html>\n",
}


def inject_mix(server):
    """PegaDMInject's answers: injected, held back across pieces, at the end, long, HEAD."""
    folder = os.path.join(server.root, "htdocs", "inject")
    os.makedirs(folder, mode=0o755)
    for name, body in INJECT_PAGES.items():
        harness.write_file(os.path.join(folder, name), body)
    return [(server.request(method, "/inject/" + name), 200)
            for method, name in (("GET", "page.html"), ("HEAD", "page.html"),
                                 ("GET", "page.shtml"), ("GET", "template.html"),
                                 ("GET", "long.html"))]


def request_mix(server, dm):
    """Every answer the module gives, with its expected status."""
    origin = {"Origin": server.origin}
    checks = [
        (session_get(server, "alice"), 200),
        (session_get(server, "alice"), 200),
        (same_origin_request(server, "POST", "alice", body={"proactiveTrigger": "t"}), 200),
        (server.request("GET", "/eager/session.shtml", user="bob"), 200),
        (server.request("GET", harness.BOOTSTRAP_PATH), 200),
        (server.request("PUT", harness.SESSION_PATH, user="alice", headers=origin), 405),
        (same_origin_request(server, "POST", "alice", body="[1, 2", headers=JSON), 400),
        (same_origin_request(server, "POST", "alice", body="x" * 5000, headers=JSON), 413),
        (same_origin_request(server, "POST", "alice", body="{}",
                             headers={"Content-Type": "text/plain"}), 415),
        (server.request("POST", harness.SESSION_PATH, user="alice",
                        headers={"Origin": "https://evil.example"}), 403),
        (session_get(server, "alice", headers={"Sec-Fetch-Site": "cross-site"}), 403),
        (same_origin_request(server, "POST", "alice"), 200),
        (same_origin_request(server, "POST", "alice"), 429),
        (same_origin_request(server, "DELETE", "alice"), 204),
    ]
    faults = [("http500", "create"), ("http401", "create"), ("non_json", "create"),
              ("no_session_id", "create"), ("bad_session_id", "create"),
              ("unsafe_session_id", "create"), ("huge_body", "create"),
              ("huge_chunked", "create"), ("reset", "create"),
              ("reset_mid_answer", "create"), ("delay", "create"),
              ("http500", "private_data")]
    for number, (mode, applies_to) in enumerate(faults):
        dm.set_mode(mode, applies_to=applies_to, delay_ms=4000)
        checks.append((session_get(server, "fault-%d" % number), 503))
    # the breaker of /breaker/session opens, answers fast, then a probe closes it
    dm.set_mode("http500", applies_to="create")
    for user in ("carol", "carol", "carol"):
        checks.append((session_get(server, user, path=BREAKER_PATH), 503))
    dm.set_mode("ok")
    time.sleep(1.3)
    checks.append((session_get(server, "carol", path=BREAKER_PATH), 200))
    return checks + inject_mix(server)


def test_a_request_mix_under_memcheck(workdir, dm):
    secret_path = harness.write_file(os.path.join(workdir, "memcheck-secret"),
                                     harness.WIDGET_SECRET + "\n", 0o600)
    conf = (harness.pegadm_conf(dm, secret=None, extra=[
        'PegaDMJWTSecretFile "%s"' % secret_path, "PegaDMTimeout 2",
        "PegaDMBreakerThreshold 0", "PegaDMCreateLimit 3 60"])
        + harness.session_location() + harness.bootstrap_location()
        + location("/eager/", "PegaDM On")
        + location("/inject/", "PegaDMInject On", auth=False)
        + harness.session_location(BREAKER_PATH, "PegaDMBreakerThreshold 2",
                                   "PegaDMBreakerCooldown 1"))
    users = ["alice", "bob", "carol"] + ["fault-%d" % i for i in range(12)]
    server = ValgrindHttpd(workdir, conf, users=users, mpm="prefork").start()
    try:
        checks = request_mix(server, dm)
    finally:
        exit_code = server.stop_and_wait()
    statuses = [(resp.status, expected) for resp, expected in checks]
    assert all(got == want for got, want in statuses), statuses
    assert parse_vars(checks[3][0].body)["SID"] not in (b"", b"(none)")

    reports = server.valgrind_reports()
    assert reports, "valgrind wrote no log"
    main = [text for text in reports.values() if " -X " in text and "HEAP SUMMARY" in text]
    assert main, "no complete report of the httpd process:\n" + "\n".join(reports)
    for name, text in reports.items():
        errors = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
        assert errors and all(n == "0" for n in errors), name + ":\n" + text[-8000:]
        assert not re.search(r"definitely lost: [1-9]", text), name + ":\n" + text[-8000:]
    assert exit_code == 0, "valgrind exited with %s:\n%s" % (exit_code, main[0][-8000:])
    assert "PEGADM300" in server.error_log() and "PEGADM302" in server.error_log()
