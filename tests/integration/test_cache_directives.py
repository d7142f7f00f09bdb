"""The shared cache directives: what start-up refuses (naming the
directive, the file and the line), the password file's mode, and what
pegadm-status shows of a shared cache the module talks to itself."""

import os
import re

import pytest

from pegadm_harness import (WIDGET_ID, WIDGET_SECRET, RedisServer, assert_json_error,
                            assert_session, location, make_public_dir, portal_conf, session_get,
                            shared_cache_conf, write_file)


GOOD = 'PegaDMWidgetID %s\nPegaDMJWTSecret "%s"\n' % (WIDGET_ID, WIDGET_SECRET)
STATUS_PATH = "/pegadm/status"
PASSWORD = "Refused-Pass-5c1e9a77"


def mentions_line(output, number):
    return any(int(n) == number for n in re.findall(r"(?:line\s+|\.conf:)(\d+)", output))


@pytest.fixture(scope="module")
def pem(workdir):
    path = os.path.join(make_public_dir(workdir, "pem-"), "any.pem")
    return write_file(path, "not checked before start-up\n")


# (the directives, the one at fault, the directive the refusal names)
REFUSALS = {
    "tls file on memcache": ("PegaDMCache memcache://127.0.0.1:11211\nPegaDMCacheCAFile {pem}",
                             "PegaDMCacheCAFile", "PegaDMCacheCAFile"),
    "password on memcache": ("PegaDMCache memcache://127.0.0.1\nPegaDMCachePassword x",
                             "PegaDMCachePassword", "PegaDMCachePassword"),
    "certificate without rediss": ("PegaDMCache redis://127.0.0.1\n"
                                   "PegaDMCacheCertificateFile {pem}\nPegaDMCacheKeyFile {pem}",
                                   "PegaDMCacheCertificateFile", "PegaDMCacheCertificateFile"),
    "certificate without key": ("PegaDMCache rediss://127.0.0.1\nPegaDMCacheCertificateFile {pem}",
                                "PegaDMCacheCertificateFile", "PegaDMCacheKeyFile"),
    "user without password": ("PegaDMCache rediss://127.0.0.1\nPegaDMCacheUser pegadm",
                              "PegaDMCacheUser", "PegaDMCachePassword"),
    "timeout with shmcb": ("PegaDMCacheTimeout 0.5", "PegaDMCacheTimeout", "PegaDMCacheTimeout"),
    "database on a cluster": ("PegaDMCache redis://10.0.0.1:7000,10.0.0.2:7000/3", "PegaDMCache",
                              "database 0 only"),
    "missing CA file": ("PegaDMCache rediss://127.0.0.1\nPegaDMCacheCAFile /nonexistent/ca.pem",
                        "PegaDMCacheCAFile", "PegaDMCacheCAFile"),
    "bad port": ("PegaDMCache redis://127.0.0.1:70000", "PegaDMCache", "1 to 65535"),
    "timeout without decimals rule": ("PegaDMCache redis://127.0.0.1\nPegaDMCacheTimeout 0.0005",
                                      "PegaDMCacheTimeout", "PegaDMCacheTimeout"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_impossible_combinations_are_refused_where_they_are(config_test, pem, case):
    lines, offending, named = REFUSALS[case]
    result = config_test(GOOD + lines.format(pem=pem) + "\n")
    rc, output = result
    assert rc != 0, "accepted:\n" + output
    assert named in output, output
    assert os.path.basename(result.path) in output, output
    assert mentions_line(output, result.line_of(offending)), output


def test_a_password_in_the_value_is_refused_and_not_repeated(config_test):
    result = config_test(GOOD + 'PegaDMCache "rediss://pegadm:%s@127.0.0.1:6380"\n' % PASSWORD)
    rc, output = result
    assert rc != 0 and "PegaDMCachePasswordFile" in output, output
    assert PASSWORD not in output and PASSWORD[:10] not in output, output


def test_decimal_timeouts_and_every_tls_file_are_accepted(config_test, pem, workdir):
    password = write_file(os.path.join(make_public_dir(workdir, "pw-"), "pass"), "p\n", 0o600)
    rc, output = config_test(GOOD + "PegaDMCache rediss://127.0.0.1:6380/2\n"
                             "PegaDMCacheTimeout 0.25\nPegaDMCacheUser pegadm\n"
                             'PegaDMCachePasswordFile "%s"\nPegaDMCacheCAFile "%s"\n'
                             'PegaDMCacheCertificateFile "%s"\nPegaDMCacheKeyFile "%s"\n'
                             % (password, pem, pem, pem))
    assert rc == 0 and "Syntax OK" in output, output


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_password_file_others_can_read_is_warned_about(config_test, workdir, mode):
    path = write_file(os.path.join(make_public_dir(workdir, "pw-"), "pass"), "p\n", mode)
    result = config_test(GOOD + "PegaDMCache redis://127.0.0.1\n"
                         'PegaDMCachePasswordFile "%s"\n' % path)
    rc, output = result
    lines = [line for line in output.splitlines() if "PEGADM903" in line and path in line]
    assert rc == 0 and lines, output
    assert mentions_line(lines[0], result.line_of("PegaDMCachePasswordFile")), output


def status_of(node, prometheus=False):
    resp = node.request("GET", STATUS_PATH + ("?format=prometheus" if prometheus else ""))
    assert resp.status == 200, resp
    return resp.text if prometheus else resp.json()


def test_status_shows_the_shared_cache(module_httpd, dm, workdir):
    redis = RedisServer(workdir).start()
    try:
        node = module_httpd(shared_cache_conf(
            dm, redis.url, location(STATUS_PATH, "SetHandler pegadm-status", auth=False),
            server_extra=["PegaDMCacheTimeout 0.5"]))
        assert_session(session_get(node, "alice"))
        cache = status_of(node)["sharedCache"]
        assert cache["kind"] == "redis" and cache["up"] is True, cache
        assert cache["seconds"]["get"]["count"] >= 1 and cache["seconds"]["mark"]["count"] >= 1
        text = status_of(node, prometheus=True)
        assert "# TYPE pegadm_cache_seconds histogram" in text, text
        assert re.search(r'^pegadm_cache_seconds_count\{op="set"\} [1-9]', text, re.M), text
        assert re.search(r"^pegadm_cache_up 1$", text, re.M), text
        redis.stop()
        assert_json_error(session_get(node, "bob"), 503, "upstream_unavailable")
        assert re.search(r"^pegadm_cache_up 0$", status_of(node, prometheus=True), re.M)
    finally:
        redis.stop()


def test_status_of_shmcb_has_no_shared_cache(module_httpd, dm):
    node = module_httpd(portal_conf(
        dm, location(STATUS_PATH, "SetHandler pegadm-status", auth=False)))
    assert "sharedCache" not in status_of(node)
    assert "pegadm_cache_seconds" not in status_of(node, prometheus=True)


def test_a_cache_named_by_host_name_answers_every_child(module_httpd, dm, workdir):
    """Managed caches are reached by name. The parent checks the cache at
    start-up, then forks the children; a lookup there must leave the
    children able to look the name up themselves (glibc's resolver threads
    of getaddrinfo_a do not survive a fork, their bookkeeping does)."""
    redis = RedisServer(workdir).start()
    try:
        node = module_httpd(shared_cache_conf(
            dm, "redis://localhost:%d" % redis.port,
            server_extra=["PegaDMCacheTimeout 0.5"]))
        for user in ("alice", "bob"):
            assert_session(session_get(node, user))
        assert "PEGADM033" not in node.error_log()
    finally:
        redis.stop()
