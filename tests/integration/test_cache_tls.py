"""Redis as the managed services run it: TLS only (verified chain, host
name and SNI; the tests' throwaway CA), an ACL user or a password, a
client certificate where the server asks for one, SELECT for /db. Sessions
work across nodes; a wrong CA, a wrong host name, a wrong password or a
missing client certificate each give 503 at once and a warning naming the
cause; the password shows in no log, no mod_info page and no dump of the
configuration."""

import itertools
import os
import re
import subprocess
import time

import pytest

from pegadm_harness import (APACHE_BIN, APACHE_MODULES, TLSRedisServer, apache_env,
                            assert_json_error, assert_retry_after, assert_session, location,
                            make_public_dir, parse_vars, session_get, shared_cache_conf, wait_for,
                            write_file)


# the preflight's warning that the shared cache cannot be used, with the cause
CACHE_UNUSABLE = "PEGADM901"
CACHE_TIMEOUT = 0.5
ACL_USER, ACL_PASSWORD = "pegadm", "acl-Pass-7f3a9c1e5b2d"
DEFAULT_PASSWORD = "def-Pass-2b8d6e0f4a1c"
WRONG_PASSWORD = "wrong-Pass-9e1d3c5b7a0f"
EAGER_PAGE = "/eager/session.shtml"
SERVER_INFO = ("LoadModule info_module %s/mod_info.so\n" % APACHE_MODULES
               + location("/server-info", "SetHandler server-info", auth=False))
numbers = itertools.count()


def customers(n=2):
    run = next(numbers)
    return ["tls-%d-%d" % (run, i) for i in range(n)]


@pytest.fixture(scope="module")
def acl_redis(workdir, cache_ca):
    """TLS only, the default user off, one ACL user; no client certificate."""
    server = TLSRedisServer(workdir, cache_ca, users={ACL_USER: ACL_PASSWORD}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_redis(workdir, cache_ca):
    """TLS only with tls-auth-clients yes, and a password (requirepass)."""
    server = TLSRedisServer(workdir, cache_ca, password=DEFAULT_PASSWORD,
                            client_certs=True).start()
    yield server
    server.stop()


def password_file(workdir, password):
    path = os.path.join(make_public_dir(workdir, "cache-pass-"), "password")
    return write_file(path, password + "\n", 0o600)


def cache_lines(ca_file, user=None, password=None, password_path=None, client=None):
    lines = ["PegaDMCacheTimeout %s" % CACHE_TIMEOUT, 'PegaDMCacheCAFile "%s"' % ca_file]
    if user:
        lines.append("PegaDMCacheUser %s" % user)
    if password:
        lines.append('PegaDMCachePassword "%s"' % password)
    if password_path:
        lines.append('PegaDMCachePasswordFile "%s"' % password_path)
    if client:
        lines += ['PegaDMCacheCertificateFile "%s"' % client.client_cert,
                  'PegaDMCacheKeyFile "%s"' % client.client_key]
    return lines


def eager_sid(node, user):
    page = node.request("GET", EAGER_PAGE, user=user)
    assert page.status == 200, page
    return parse_vars(page.body)["SID"].decode()


def test_sessions_across_two_nodes_with_an_acl_user_and_select_3(
        module_httpd, dm, cache_ca, acl_redis, workdir):
    lines = cache_lines(cache_ca.ca_cert, ACL_USER,
                        password_path=password_file(workdir, ACL_PASSWORD))
    # one node by IPv4, the other by IPv6: both are in the certificate
    values = ["rediss://127.0.0.1:%d/3" % acl_redis.port, "rediss://[::1]:%d/3" % acl_redis.port]
    users = customers()
    nodes = [module_httpd(shared_cache_conf(dm, value, server_extra=lines), users=users, mpm=mpm)
             for value, mpm in zip(values, ("event", "prefork"))]
    sid = assert_session(session_get(nodes[0], users[0]))
    assert assert_session(session_get(nodes[1], users[0])) == sid
    assert eager_sid(nodes[1], users[0]) == sid
    assert eager_sid(nodes[0], users[1]) == assert_session(session_get(nodes[1], users[1]))
    assert len(dm.creates_for(users[0])) == 1 and len(dm.creates_for(users[1])) == 1
    assert int(acl_redis.cli("-n", "3", "DBSIZE")) > 0
    assert int(acl_redis.cli("-n", "0", "DBSIZE")) == 0


def test_sessions_with_a_client_certificate_and_a_password(module_httpd, dm, cache_ca,
                                                           mtls_redis, workdir):
    lines = cache_lines(cache_ca.ca_cert, password_path=password_file(workdir, DEFAULT_PASSWORD),
                        client=cache_ca)
    users = customers()
    nodes = [module_httpd(shared_cache_conf(dm, mtls_redis.url, server_extra=lines), users=users,
                          mpm=mpm) for mpm in ("event", "worker")]
    sid = assert_session(session_get(nodes[0], users[0]))
    assert assert_session(session_get(nodes[1], users[0])) == sid
    assert len(dm.creates_for(users[0])) == 1


# what is wrong -> (the server, PegaDMCache's host, CA, password, client
# certificate, the cause the warning names (pegadm_cacheerr.h's name), a
# word of what the server or OpenSSL said)
FAILURES = {
    "wrong_ca": ("acl", "127.0.0.1", "other", ACL_PASSWORD, False, "tls", "verify"),
    "wrong_host_name": ("acl", "localhost", "ca", ACL_PASSWORD, False, "tls", "hostname"),
    "wrong_password": ("acl", "127.0.0.1", "ca", WRONG_PASSWORD, False, "auth", "WRONGPASS"),
    # TLS 1.3: the server's alert may come after the handshake, or the
    # connection just closes, so what OpenSSL says varies
    "no_client_certificate": ("mtls", "127.0.0.1", "ca", DEFAULT_PASSWORD, False, "tls", ""),
}


@pytest.mark.parametrize("wrong", sorted(FAILURES))
def test_an_unusable_tls_cache_answers_503_at_once_and_says_why(
        module_httpd, dm, cache_ca, acl_redis, mtls_redis, workdir, wrong):
    which, host, ca, password, client, cause, detail = FAILURES[wrong]
    server = acl_redis if which == "acl" else mtls_redis
    lines = cache_lines(cache_ca.ca_cert if ca == "ca" else cache_ca.other_ca_cert,
                        ACL_USER if which == "acl" else None,
                        password_path=password_file(workdir, password),
                        client=cache_ca if client else None)
    users = customers()
    node = module_httpd(shared_cache_conf(dm, "rediss://%s:%d" % (host, server.port),
                                          server_extra=lines),
                        users=users, startup_warnings=[CACHE_UNUSABLE])
    began = time.monotonic()
    resp = session_get(node, users[0])
    took = time.monotonic() - began
    assert_json_error(resp, 503, "upstream_unavailable")
    assert_retry_after(resp)
    assert took <= CACHE_TIMEOUT + 2, took
    assert eager_sid(node, users[1]) == "(none)"
    assert dm.create_count() == 0

    def warning():
        return [line for line in node.error_log().splitlines() if CACHE_UNUSABLE in line]

    line = wait_for(warning, 10, 0.1, "the warning naming the cause")[0]
    assert re.search(r"\b%s\b" % cause, line) and detail in line, line
    assert "%s:%d" % (host, server.port) in line, line


def test_the_cache_password_shows_nowhere(module_httpd, dm, cache_ca, acl_redis):
    users = customers()
    good = module_httpd(shared_cache_conf(
        dm, acl_redis.url + "/3", SERVER_INFO,
        server_extra=cache_lines(cache_ca.ca_cert, ACL_USER, password=ACL_PASSWORD)),
        users=users, loglevel="trace8")
    bad = module_httpd(shared_cache_conf(
        dm, acl_redis.url + "/3",
        server_extra=cache_lines(cache_ca.ca_cert, ACL_USER, password=WRONG_PASSWORD)),
        users=users, loglevel="trace8", startup_warnings=[CACHE_UNUSABLE])
    assert_session(session_get(good, users[0]))
    assert_json_error(session_get(bad, users[0]), 503, "upstream_unavailable")
    shown = ""
    for query in ("", "?config", "?list", "?server", "?hooks", "?providers"):
        resp = good.request("GET", "/server-info" + query)
        assert resp.status == 200, resp
        shown += resp.text
    assert "PegaDMCachePassword" in shown, shown[:3000]
    dumps = ""
    for define in ("DUMP_CONFIG", "DUMP_RUN_CFG"):
        proc = subprocess.run([APACHE_BIN, "-t", "-D", define, "-f", good.conf_path],
                              capture_output=True, env=apache_env(), timeout=30)
        assert proc.returncode == 0, proc
        dumps += (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert "PegaDMCachePassword" in dumps, dumps[:3000]
    good.stop()
    bad.stop()
    texts = {"server-info": shown, "dumps": dumps}
    for node in (good, bad):
        texts.update({node.error_log_path: node.error_log(),
                      node.access_log_path: node.access_log(),
                      node.stdout_path: node.read(node.stdout_path)})
    assert "[core:trace" in texts[good.error_log_path], "not a trace8 log"
    for name, text in texts.items():
        for password in (ACL_PASSWORD, WRONG_PASSWORD):
            assert password not in text, (name, password)
            assert password[:10] not in text, (name, password[:10])
