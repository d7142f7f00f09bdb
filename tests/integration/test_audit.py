"""PegaDMAuditLog: one JSON line per create, private-data push, forget and
refusal, customer and session only as keyed hashes; to a file, through
rotatelogs, and never holding up a request when the program stalls."""

import glob
import json
import os
import re
import shutil
import time

import pegadm_harness as harness
from pegadm_harness import assert_session, portal_conf, same_origin_request, session_get

ROTATELOGS = shutil.which("rotatelogs") or "/usr/bin/rotatelogs"
STATUS = harness.location("/pegadm/status", "SetHandler pegadm-status", auth=False)
HASH_RE = re.compile(r"^[0-9a-f]{32}$")
FIELDS = {"time", "node", "widget", "event", "outcome", "latencyMs"}


def audit_site(dm, target, *extra):
    return portal_conf(dm, STATUS, server_extra=['PegaDMAuditLog "%s"' % target, *extra])


def read_lines(path_glob, want, timeout=10):
    def lines():
        text = "".join(open(p, encoding="utf-8").read() for p in sorted(glob.glob(path_glob)))
        found = text.splitlines()
        return found if len(found) >= want else None
    return harness.wait_for(lines, timeout, what="%d audit lines in %s" % (want, path_glob))


def parse(lines):
    events = [json.loads(line) for line in lines]
    for e in events:
        assert FIELDS <= set(e), e
        assert e["widget"] == harness.WIDGET_ID
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"]), e
        assert isinstance(e["latencyMs"], (int, float)) and e["latencyMs"] >= 0
        for key in ("customer", "session"):
            if key in e:
                assert HASH_RE.match(e[key]), e
    return events


def exercise(server, dm):
    """A create, a cached answer (no event), a renewal, a refusal, a failed
    create and a forget; returns the IDs that must not show in the log.
    Under PegaDMCreateLimit 2 the first create and the renewal use it up."""
    sid1 = assert_session(session_get(server, "alice"))
    assert assert_session(session_get(server, "alice")) == sid1
    sid2 = assert_session(same_origin_request(server, "POST", "alice"))
    assert same_origin_request(server, "POST", "alice").status == 429
    dm.set_mode("http500", applies_to="create")
    assert session_get(server, "bob").status == 503
    dm.set_mode("ok")
    assert same_origin_request(server, "DELETE", "alice").status == 204
    return ["alice", "bob", sid1, sid2]


EXPECTED = [
    ("create", "ok"), ("private_data", "ok"),
    ("create", "ok"), ("private_data", "ok"),
    ("refusal", "rate_limited"),
    ("create", "http_error"),
    ("forget", "ok"),
]


def check_log(text_lines, secrets):
    events = parse(text_lines)
    assert [(e["event"], e["outcome"]) for e in events] == EXPECTED, events
    alice = {e["customer"] for i, e in enumerate(events) if i != 5}
    assert len(alice) == 1, "one customer, one stable hash"
    assert events[5]["customer"] not in alice
    assert events[0]["session"] == events[1]["session"]
    assert events[2]["session"] != events[0]["session"]
    assert "session" not in events[4] and "session" not in events[5]
    text = "\n".join(text_lines)
    for secret in secrets:
        assert secret not in text, secret
    assert harness.WIDGET_SECRET not in text


def test_a_file_gets_one_json_line_per_event(module_httpd, dm):
    server = module_httpd(audit_site(dm, "logs/audit.log", "PegaDMCreateLimit 2 60"),
                          users=["alice", "bob"])
    secrets = exercise(server, dm)
    path = os.path.join(server.root, "logs", "audit.log")
    lines = read_lines(path, len(EXPECTED))
    assert len(lines) == len(EXPECTED), lines
    check_log(lines, secrets)
    # the status handler counted the same events
    w = server.request("GET", "/pegadm/status").json()["widgets"][0]
    assert w["creates"] == {"ok": 2, "unreachable": 0, "http_error": 1, "bad_answer": 0,
                            "internal": 0, "breaker_open": 0}
    assert w["rateLimited"] == 1 and w["forgets"] == 1
    assert w["privateDataPushes"]["ok"] == 2


def test_rotatelogs_as_the_program(module_httpd, dm, workdir):
    logs = harness.make_public_dir(workdir, "audit-")
    target = "|%s %s/audit.%%Y%%m%%d 86400" % (ROTATELOGS, logs)
    server = module_httpd(audit_site(dm, target, "PegaDMCreateLimit 2 60"),
                          users=["alice", "bob"])
    secrets = exercise(server, dm)
    lines = read_lines(os.path.join(logs, "audit.2*"), len(EXPECTED))
    check_log(lines, secrets)


def test_a_stalled_program_holds_up_no_request(module_httpd, dm):
    # the program never reads: the pipe fills after a few hundred lines
    server = module_httpd(audit_site(dm, "|/bin/sleep 600"), users=["alice"])
    slowest = 0.0
    for _ in range(400):
        started = time.monotonic()
        assert same_origin_request(server, "DELETE", "alice").status == 204
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 2.0, slowest
    text = server.request("GET", "/pegadm/status?format=prometheus").text
    dropped = re.search(r"^pegadm_audit_dropped_total (\d+)$", text, re.M)
    assert dropped and int(dropped.group(1)) > 0, text
    assert "PEGADM613" in server.error_log()


def test_cross_site_and_non_json_posts_are_audited_as_refusals(module_httpd, dm):
    server = module_httpd(audit_site(dm, "logs/audit.log"), users=["alice"])
    forged = server.request("POST", harness.SESSION_PATH, user="alice",
                            headers={"Origin": "https://attacker.example",
                                     "Content-Type": "application/json"}, body=b"{}")
    assert forged.status == 403
    form = same_origin_request(server, "POST", "alice",
                               headers={"Content-Type": "text/plain"}, body=b"{}")
    assert form.status == 415
    path = os.path.join(server.root, "logs", "audit.log")
    lines = read_lines(path, 2)
    events = parse(lines)
    assert [(e["event"], e["outcome"]) for e in events] == [
        ("refusal", "cross_origin"), ("refusal", "unsupported_media_type")], events
    assert all("customer" not in e and "session" not in e for e in events), events
    assert "alice" not in "\n".join(lines)
    assert dm.create_count() == 0
