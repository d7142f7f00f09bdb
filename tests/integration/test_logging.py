"""Neither the JWT secret nor a minted token may reach any log, at any
level: run at trace8 and look."""

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
