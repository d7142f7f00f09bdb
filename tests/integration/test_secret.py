"""The JWT secret: a secret file others can read draws a warning, a changed
file is read again on a graceful restart, and the secret shows up in no log
(at trace8) and no response."""

import os
import re

import pytest

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_session, location, parse_vars,
                             same_origin_request, session_get)

OLD_SECRET = "file-secret-before-rotation-0123456789abcdef"
NEW_SECRET = "file-secret-after-rotation-fedcba9876543210"


def secret_file(workdir, name, secret, mode=0o600):
    return harness.write_file(os.path.join(workdir, name), secret + "\n", mode)


def file_site(dm, path, *blocks, extra=()):
    """The usual portal, the secret read from `path`."""
    return (harness.pegadm_conf(dm, secret=None, extra=[
        'PegaDMJWTSecretFile "%s"' % path, *extra])
        + harness.session_location() + harness.bootstrap_location() + "".join(blocks))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_secret_file_others_can_read_draws_a_warning(config_test, workdir, mode):
    path = secret_file(workdir, "secret-%o" % mode, OLD_SECRET, mode)
    directive = 'PegaDMJWTSecretFile "%s"' % path
    result = config_test(harness.pegadm_conf(secret=None, extra=[directive]))
    code, output = result
    assert code == 0, output
    warning = [line for line in output.splitlines() if "PEGADM001" in line]
    assert len(warning) == 1, output
    assert path in warning[0] and "readable by group or others" in warning[0]
    assert ":%d" % result.line_of(directive) in warning[0], warning
    assert OLD_SECRET not in output


def test_a_private_secret_file_draws_no_warning(module_httpd, dm, workdir):
    path = secret_file(workdir, "secret-private", OLD_SECRET)
    dm.set_secret(OLD_SECRET)
    server = module_httpd(file_site(dm, path))
    assert_session(session_get(server, "alice"))
    server.stop()
    assert "PEGADM001" not in server.error_log() + server.read(server.stdout_path)


def test_graceful_restart_reads_a_changed_secret_file(module_httpd, dm, workdir):
    path = secret_file(workdir, "secret-rotated", OLD_SECRET)
    dm.set_secret(OLD_SECRET)
    server = module_httpd(file_site(dm, path, extra=["PegaDMBreakerThreshold 0"]),
                          users=["alice", "bob", "carol"])
    assert_session(session_get(server, "alice"))

    # The service rotates first: the running server's tokens are refused...
    secret_file(workdir, "secret-rotated", NEW_SECRET)
    dm.set_secret(NEW_SECRET)
    assert_json_error(session_get(server, "bob"), 503, "upstream_unavailable")
    assert any("signature" in r["reason"] for r in dm.state()["rejections"])

    # ...until a graceful restart reads the file again.
    harness.graceful_restart(server)
    assert_session(session_get(server, "bob"))
    assert_session(session_get(server, "carol"))
    assert [len(dm.creates_for(u)) for u in ("alice", "bob", "carol")] == [1, 1, 1]
    server.stop()
    text = server.error_log() + server.access_log() + server.read(server.stdout_path)
    assert OLD_SECRET not in text and NEW_SECRET not in text


CGI_ENV = """\
#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env
"""


def leaks(text, secrets):
    """The secrets, or telling parts of them, found in text."""
    found = [s for s in secrets if s in text]
    found += [m for m in re.findall(r"eyJ[A-Za-z0-9_-]{10,}", text)]
    return found


def test_the_secret_is_in_no_log_and_no_response(module_httpd, dm, workdir):
    path = secret_file(workdir, "secret-traced", OLD_SECRET)
    inline = harness.OTHER_WIDGET_SECRET  # given in the configuration itself
    dm.set_secret(OLD_SECRET)
    server = module_httpd(
        file_site(dm, path, location("/eager/", "PegaDM On"),
                  location("/cgi-bin/", "PegaDM On"),
                  location("/other/session", "SetHandler pegadm-session",
                           "PegaDMWidgetID %s" % harness.OTHER_WIDGET_ID,
                           'PegaDMJWTSecret "%s"' % inline)),
        users=["alice", "bob"], loglevel="trace8")
    harness.write_file(os.path.join(server.root, "cgi-bin", "env.cgi"), CGI_ENV, 0o755)
    responses = [
        session_get(server, "alice"),
        same_origin_request(server, "POST", "alice", body={"proactiveTrigger": "t"}),
        server.request("GET", "/eager/session.shtml", user="alice"),
        server.request("GET", "/cgi-bin/env.cgi", user="alice"),
        server.request("GET", harness.BOOTSTRAP_PATH),
        session_get(server, "alice", path="/other/session"),
        same_origin_request(server, "DELETE", "alice"),
    ]
    assert [r.status for r in responses] == [200, 200, 200, 200, 200, 200, 204], responses
    assert b"PEGADM_SESSION_ID=" in responses[3].body, "the CGI saw no module variables"
    # failures log their cause: the cause must not carry the secret either
    dm.set_mode("http401")
    assert_json_error(session_get(server, "bob"), 503, "upstream_unavailable")
    page = server.request("GET", "/eager/session.shtml", user="bob")
    assert parse_vars(page.body)["SID"] == b"(none)"
    responses += [page]
    server.stop()

    secrets = [OLD_SECRET, inline]
    for resp in responses:
        text = resp.text + "".join("%s: %s\n" % kv for kv in resp.headers.items())
        assert not leaks(text, secrets), (resp, leaks(text, secrets))
    logs = {"error.log": server.error_log(), "access.log": server.access_log(),
            "stdout": server.read(server.stdout_path)}
    assert "[pegadm:" in logs["error.log"] and "[core:trace" in logs["error.log"], \
        "not a trace8 log"
    for name, text in logs.items():
        assert not leaks(text, secrets), (name, leaks(text, secrets))
    for token in dm.state()["tokens"]:
        for name, text in logs.items():
            assert token.split(".")[2] not in text, "a token signature in " + name
