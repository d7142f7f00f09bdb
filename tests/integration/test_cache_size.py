"""Sizing the shmcb session cache: by default it keeps 100,000 customers
(PegaDMCacheCustomers), with the layout shmcb itself reports for the size
and hints the module gives it; a configured size too small for that draws
a start-up warning saying how big it must be."""

import os
import re
import threading

import pytest

from pegadm_harness import assert_session, location, portal_conf, session_get

LAYOUT_RE = re.compile(r"PEGADM402: session cache: shmcb of (\d+) bytes, (\d+) subcaches of "
                       r"(\d+) index slots and (\d+) data bytes: keeps the sessions of about "
                       r"(\d+) customers")
SHMCB_RE = re.compile(r"AH00822: for \d+ bytes \((\d+) including header\), recommending "
                      r"(\d+) subcaches, (\d+) indexes each")
DATA_SIZE_RE = re.compile(r"AH00828: subcache_data_size = (\d+)")


def layouts(node):
    """What the module says of its cache, and what shmcb says it made."""
    log = node.error_log()
    ours = [tuple(map(int, m)) for m in LAYOUT_RE.findall(log)]
    shmcb = [tuple(map(int, m)) for m in SHMCB_RE.findall(log)]
    data = [int(d) for d in DATA_SIZE_RE.findall(log)]
    assert len(ours) == 1, log
    return ours[0], dict((s[0], (s[1], s[2], d)) for s, d in zip(shmcb, data))


@pytest.mark.parametrize("cache", [None, "PegaDMCache shmcb"])
def test_default_cache_keeps_100000_customers(module_httpd, dm, cache):
    node = module_httpd(portal_conf(dm, server_extra=[cache] if cache else []),
                        loglevel="info socache_shmcb:debug")
    assert_session(session_get(node, "alice"))
    (size, subcaches, indexes, data, customers), shmcb = layouts(node)
    assert customers >= 100000
    assert size < 112 * 1024 * 1024
    # shmcb made exactly the layout the module's arithmetic counted on.
    assert shmcb.get(size) == (subcaches, indexes, data), (size, shmcb)


def test_customers_directive_sizes_the_default(module_httpd, dm):
    node = module_httpd(portal_conf(dm, server_extra=["PegaDMCacheCustomers 2000"]),
                        loglevel="info socache_shmcb:debug")
    (size, subcaches, indexes, data, customers), shmcb = layouts(node)
    assert 2000 <= customers < 4000
    assert size < 4 * 1024 * 1024
    assert shmcb.get(size) == (subcaches, indexes, data)


def shmcb_directive(workdir, size):
    return 'PegaDMCache "shmcb:%s(%d)"' % (os.path.join(workdir, "sessions.cache"), size)


def test_too_small_cache_draws_a_warning(config_test, workdir):
    directive = shmcb_directive(workdir, 1048576)
    result = config_test(portal_conf(None, server_extra=[directive]))
    rc, output = result
    assert rc == 0, output
    warning = [line for line in output.splitlines() if "PEGADM401" in line]
    assert len(warning) == 1, output
    assert "%s:%d" % (result.path, result.line_of(directive)) in warning[0]
    need = int(re.search(r"Give at least (\d+) bytes", warning[0]).group(1))
    assert need > 60 * 1024 * 1024
    assert "sessions.cache(%d)" % need in warning[0]


def test_cache_sized_for_its_customers_is_quiet(config_test, workdir):
    result = config_test(portal_conf(None, server_extra=[
        shmcb_directive(workdir, 2 * 1048576), "PegaDMCacheCustomers 1000"]))
    rc, output = result
    assert rc == 0 and "PEGADM401" not in output, output


@pytest.mark.parametrize("value", ["0", "5000001", "many", "-5"])
def test_customers_must_be_a_sensible_number(config_test, value):
    bad = "PegaDMCacheCustomers %s" % value
    result = config_test(portal_conf(None, server_extra=[bad]))
    rc, output = result
    assert rc != 0 and "PegaDMCacheCustomers" in output, output
    assert "line %d" % result.line_of(bad) in output, output


def test_customers_is_server_wide(config_test):
    result = config_test(portal_conf(None) + "<VirtualHost 127.0.0.1:8999>\n"
                         "    PegaDMCacheCustomers 5000\n</VirtualHost>\n")
    rc, output = result
    assert rc != 0 and "PegaDMCacheCustomers" in output, output


def fill_location():
    """Customers named by a header, so that a test can have hundreds cheaply."""
    return location("/fill", "SetHandler pegadm-session", 'PegaDMCustomerID "%{HTTP:X-Customer}"',
                    "Require all granted", auth=False)


def for_customers(count, action, threads=6):
    """action(i) for every customer i, spread over a few client threads."""
    results, errors = {}, []

    def run(first):
        try:
            for i in range(first, count, threads):
                results[i] = action(i)
        except Exception as err:  # reported below
            errors.append(err)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors, errors[:3]
    assert len(results) == count
    return results


def test_a_cache_sized_for_its_customers_keeps_them_all(module_httpd, dm):
    """Through the module, each customer writes what the sizing counts for
    one TTL (a session, then a fresh one): none is pushed out early. (In
    shmcb's own default of 512 KiB, some would be.)"""
    customers = 1000
    node = module_httpd(portal_conf(dm, fill_location(), server_extra=[
        "PegaDMCacheCustomers %d" % customers]), startup_warnings=["PEGADM703"])

    def first_and_fresh(i):
        headers = {"X-Customer": "customer-%d" % i}
        assert_session(node.request("GET", "/fill", headers=headers))
        headers["Origin"] = node.origin
        return assert_session(node.request("POST", "/fill", headers=headers))

    sids = for_customers(customers, first_and_fresh)
    again = for_customers(customers, lambda i: assert_session(
        node.request("GET", "/fill", headers={"X-Customer": "customer-%d" % i})))
    assert again == sids
    assert len(dm.state()["creates"]) == 2 * customers
