"""PegaDMCacheReadsPerChild: how many reads of a memcache or redis cache one
child process sends at once without the node's mutex. Its start-up checks:
a value out of range is refused with its file and line; where lookups take
the node's mutex anyway (shmcb, PegaDMCacheReadLock On) it is ignored with
a notice that says where it is and why."""


import pytest

from pegadm_harness import caches
from pegadm_harness import cache_node_conf, portal_conf, sessions_at_once


def notices(output, number):
    return [line for line in output.splitlines() if number in line]


@pytest.mark.parametrize("value", ["-1", "1001", "two", "2x", "+2"])
def test_out_of_range_values_are_refused_with_file_and_line(config_test, value):
    bad = "PegaDMCacheReadsPerChild %s" % value
    result = config_test(portal_conf(None, server_extra=[bad]))
    rc, output = result
    assert rc != 0, output
    assert ("PegaDMCacheReadsPerChild: '%s' is not a whole number from 0 to 1000" % value
            in output), output
    assert "line %d of %s" % (result.line_of(bad), result.path) in output, output


def test_it_is_server_wide(config_test):
    rc, output = config_test(portal_conf(None) + "<VirtualHost 127.0.0.1:8999>\n"
                             "    PegaDMCacheReadsPerChild 2\n</VirtualHost>\n")
    assert rc != 0 and "PegaDMCacheReadsPerChild" in output, output


def test_shmcb_ignores_it_and_says_so(config_test):
    directive = "PegaDMCacheReadsPerChild 4"
    result = config_test(portal_conf(None, server_extra=[directive]))
    rc, output = result
    assert rc == 0, output
    found = notices(output, "PEGADM861")
    assert len(found) == 1, output
    assert "(%s:%d) is ignored" % (result.path, result.line_of(directive)) in found[0]
    assert "shmcb cache is not safe for concurrent use" in found[0]


@pytest.mark.parametrize("kind", sorted(caches.KINDS))
def test_the_node_mutex_overrules_it_and_says_so(config_test, workdir, kind):
    cache = caches.KINDS[kind](workdir)  # not started: a configuration test reads nothing
    directive = "PegaDMCacheReadsPerChild 4"
    conf = portal_conf(None, server_extra=[cache.directive, directive])
    rc, output = config_test(cache.load_line + conf)
    assert rc == 0 and not notices(output, "PEGADM861"), output
    result = config_test(cache.load_line + portal_conf(
        None, server_extra=[cache.directive, "PegaDMCacheReadLock On", directive]))
    rc, output = result
    assert rc == 0, output
    found = notices(output, "PEGADM861")
    assert len(found) == 1, output
    assert "(%s:%d) is ignored: PegaDMCacheReadLock On" % (
        result.path, result.line_of(directive)) in found[0]


def test_bounded_reads_keep_one_session_per_customer(module_httpd, dm, cache_server):
    """The default for memcache and redis: reads without the node's mutex,
    at most PegaDMCacheReadsPerChild at once per child; many concurrent
    lookups through one place still each get the customer's one session."""
    users = ["r%d" % i for i in range(5)]
    node = module_httpd(cache_node_conf(dm, cache_server, "PegaDMLocalCache 0\n",
                                        server_extra=["PegaDMCacheReadsPerChild 1"]),
                        users=users)
    for user, sids in sessions_at_once(node, users).items():
        assert len(set(sids)) == 1, sids
    started = notices(node.error_log(), "PEGADM841")
    assert len(started) == 1 and "at most 1 at once per child process" in started[0], started
