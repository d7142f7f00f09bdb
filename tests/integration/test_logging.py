"""Neither the JWT secret nor a minted token may reach any log, at any
level: run at trace8 and look. And a test server as the harness makes it
starts without a warning, so that one a test does not mean stands out."""

import os

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_session, location, portal_conf, same_origin_request, session_get


def token_fragments(tokens):
    """Whole tokens and their payload and signature segments."""
    fragments = set()
    for token in tokens:
        fragments.add(token)
        fragments.update(part for part in token.split(".")[1:] if len(part) >= 16)
    return fragments


def test_trace8_logs_no_secret_and_no_token(module_httpd, dm):
    server = module_httpd(
        portal_conf(dm, location("/eager/", "PegaDM On")),
        users=["alice", "bob", "carol"], loglevel="info pegadm:trace8")
    assert_session(session_get(server, "alice"))
    assert_session(same_origin_request(server, "POST", "alice"))
    assert same_origin_request(server, "DELETE", "alice").status == 204
    assert_session(session_get(server, "bob"))
    dm.set_mode("http500")
    assert server.request("GET", "/eager/session.shtml", user="carol").status == 200
    assert session_get(server, "alice").status == 503
    tokens = dm.state()["tokens"]
    # alice twice, bob: create + private data; carol and alice: a failed create.
    assert len(tokens) >= 8, tokens
    server.stop()
    logs = {"error.log": server.error_log(), "access.log": server.access_log(),
            "stdout": server.read(server.stdout_path)}
    assert harness.pegadm_log_lines(logs["error.log"]), "trace8 produced no module output"
    for name, text in logs.items():
        assert harness.WIDGET_SECRET not in text, "secret in " + name
        assert "eyJ" not in text, "something JWT-like in " + name
        leaked = [f for f in token_fragments(tokens) if f in text]
        assert not leaked, "token material in %s: %s" % (name, leaked[:3])


# ---- the test servers' own start-up ----

def test_a_default_test_server_starts_without_a_warning(module_httpd, dm):
    """The harness's httpd.conf is private (its inline secret draws no
    PEGADM701) and its access log has no session ID (no PEGADM705)."""
    server = module_httpd(portal_conf(dm, location("/eager/", "PegaDM On")))
    assert os.stat(server.conf_path).st_mode & 0o077 == 0
    log = server.error_log()
    assert "PEGADM602" in log, log  # the module started and logged
    assert harness.pegadm_warnings(log) == [], log


def test_a_start_up_warning_the_test_does_not_name_fails_the_start(module_httpd, dm, workdir):
    include = harness.write_file(os.path.join(workdir, "readable-secret.conf"),
                                 'PegaDMJWTSecret "%s"\n' % harness.WIDGET_SECRET, 0o644)
    conf = portal_conf(dm, 'Include "%s"\n' % include, secret=None)
    with pytest.raises(AssertionError, match="PEGADM701"):
        module_httpd(conf)
    server = module_httpd(conf, startup_warnings=["PEGADM701"])
    assert "PEGADM701" in server.error_log()
