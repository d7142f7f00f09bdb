"""Every way the service can fail, one at a time: the JSON endpoint answers
503 upstream_unavailable with Retry-After within PegaDMTimeout plus a second,
an eager page is still served without the variables, the error log gets one
line naming the cause, and nothing is cached: once the service is healthy,
the next request makes a fresh create."""

import os
import re
import time

import pytest

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_retry_after, assert_session, location,
                             parse_vars, portal_conf, session_get)

TIMEOUT = 2  # PegaDMTimeout of these servers, seconds


@pytest.fixture(scope="module")
def untrusted_emulator(workdir):
    """An emulator whose certificate comes from a CA the module does not trust."""
    other = harness.load_ca_module().make_untrusted(os.path.join(workdir, "untrusted-ca"))
    emu = harness.Emulator(workdir, other, {harness.WIDGET_ID: harness.WIDGET_SECRET})
    yield emu.start()
    emu.stop()


@pytest.fixture(scope="module")
def wrong_host_emulator(workdir):
    """An emulator with a certificate for another name, from a CA the module
    is told to trust (PegaDMCAFile): only the host name check can refuse it."""
    other = harness.load_ca_module().make_ca(
        os.path.join(workdir, "wrong-host-ca"), prefix="wrong-host-", san="DNS:pega.invalid")
    emu = harness.Emulator(workdir, other, {harness.WIDGET_ID: harness.WIDGET_SECRET})
    emu.context.check_hostname = False  # for the control calls of this test only
    yield emu.start()
    emu.stop()


def fault_site(service_url, ca_file):
    return portal_conf(
        None, location("/eager/", "PegaDM On"),
        service_url=service_url, ca_file=ca_file,
        server_extra=["PegaDMTimeout %d" % TIMEOUT, "PegaDMConnectTimeout 1"])


def problem_lines(server, after):
    """Module log lines of level warn or worse written after offset `after`."""
    text = server.error_log()[after:]
    return [line for line in harness.pegadm_log_lines(text)
            if re.search(r"\[pegadm:(warn|error|crit|alert|emerg)\]", line)]


def one_cause_logged(server, after, cause):
    lines = harness.wait_for(lambda: problem_lines(server, after), 5,
                             what="the module's log line")
    time.sleep(0.2)  # a second line, if any, would be written by now
    lines = problem_lines(server, after)
    assert len(lines) == 1, lines
    assert "PEGADM036" in lines[0], lines
    assert re.search(cause, lines[0], re.I), (cause, lines[0])
    return lines[0]


def check_fault(server, dm, user, cause):
    """The three promises for one failing service, then recovery."""
    offset = len(server.error_log())
    started = time.monotonic()
    resp = session_get(server, user)
    elapsed = time.monotonic() - started
    assert_json_error(resp, 503, "upstream_unavailable")
    assert_retry_after(resp)
    assert elapsed < TIMEOUT + 1, "503 after %.1fs" % elapsed
    line = one_cause_logged(server, offset, cause)

    offset = len(server.error_log())
    page = server.request("GET", "/eager/session.shtml", user=user)
    assert page.status == 200, page
    assert parse_vars(page.body)["SID"] == b"(none)"
    one_cause_logged(server, offset, cause)
    return line


def check_nothing_cached(server, dm, user):
    before = {c["sessionId"] for c in dm.creates_for(user)}
    sid = assert_session(session_get(server, user))
    after = [c["sessionId"] for c in dm.creates_for(user)]
    assert sid not in before and after[-1] == sid, "a failed attempt's session was served"
    assert len(after) == len(before) + 1
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": user}


# mode, applies_to, the cause the log line must name
MODES = {
    "5xx": ("http500", "create", r"/create: service answered HTTP 500"),
    "connection reset, no answer": ("reset", "create", r"/create: .*(reset|closed|eof)"),
    "connection reset mid-answer": ("reset_mid_answer", "create",
                                    r"/create: .*(reset|closed|eof|partial|transfer closed)"),
    "non-JSON": ("non_json", "create", r"/create: answer is not JSON"),
    "no sessionId": ("no_session_id", "create", r"/create: answer has no sessionId"),
    "sessionId not a string": ("bad_session_id", "create",
                               r"/create: sessionId in the answer is not a string"),
    "unsafe sessionId": ("unsafe_session_id", "create",
                         r"/create: sessionId in the answer has characters outside"),
    "huge body": ("huge_body", "create", r"/create: answer larger than 65536 bytes"),
    "huge chunked body": ("huge_chunked", "create", r"/create: answer larger than 65536 bytes"),
    "slower than PegaDMTimeout": ("delay", "create", r"/create: timed out"),
    "private data fails after create": (
        "http500", "private_data", r"private data: POST \S+/private-data: .*HTTP 500"),
    "private data reset": ("reset", "private_data", r"private data: POST \S+/private-data: "),
}


@pytest.mark.parametrize("name", sorted(MODES))
def test_fault_mode(module_httpd, dm, name):
    mode, applies_to, cause = MODES[name]
    server = module_httpd(fault_site(dm.url, dm.ca_file))
    dm.set_mode(mode, applies_to=applies_to, delay_ms=(TIMEOUT + 2) * 1000)
    line = check_fault(server, dm, "alice", cause)
    assert "<script>" not in line and "Set-Cookie" not in line
    assert dm.state()["faults"], "the module never called the service"
    dm.set_mode("ok")
    check_nothing_cached(server, dm, "alice")


def test_connection_refused(module_httpd, dm, closed_port):
    server = module_httpd(fault_site("http://127.0.0.1:%d" % closed_port, None),
                          startup_warnings=["PEGADM630"])
    check_fault(server, dm, "alice", r"/create: cannot connect: .*127\.0\.0\.1")


def test_bad_secret_is_refused_with_401(module_httpd, dm):
    server = module_httpd(fault_site(dm.url, dm.ca_file))
    dm.set_secret("a-secret-the-module-does-not-have")
    check_fault(server, dm, "alice", r"/create: service answered HTTP 401 .*PegaDMJWTSecret")
    reasons = [r["reason"] for r in dm.state()["rejections"]]
    assert reasons and all("signature" in r for r in reasons), reasons
    dm.set_secret(harness.WIDGET_SECRET)
    check_nothing_cached(server, dm, "alice")


def test_untrusted_certificate(module_httpd, dm, untrusted_emulator):
    server = module_httpd(fault_site(untrusted_emulator.url, dm.ca_file),
                          startup_warnings=["PEGADM630"])
    check_fault(server, dm, "alice", r"/create: TLS failure: .*certificate")
    state = untrusted_emulator.state()
    assert state["tokens"] == [] and state["tls_failures"] >= 2


def test_certificate_for_another_host(module_httpd, dm, wrong_host_emulator):
    server = module_httpd(fault_site(wrong_host_emulator.url, wrong_host_emulator.ca_file),
                          startup_warnings=["PEGADM630"])
    check_fault(server, dm, "alice", r"/create: TLS failure: .*(name|host)")
    state = wrong_host_emulator.state()
    assert state["tokens"] == [] and state["connections"] >= 2
