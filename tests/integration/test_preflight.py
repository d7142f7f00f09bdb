"""Preflight: at start-up the module checks each configured service (DNS,
connect, verified TLS) and records its certificate's expiry; an expiring
certificate or an unreachable service is warned about and httpd starts
anyway; children start with a warm connection; mod_watchdog repeats the
check."""

import os
import re

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_json_error, assert_session, portal_conf, session_get

STATUS = harness.location("/pegadm/status", "SetHandler pegadm-status", auth=False)
EXPIRY_RE = re.compile(r'^pegadm_service_certificate_expiry_seconds\{widget="%s"\} (-?\d+)$'
                       % harness.WIDGET_ID, re.M)
ONE_CHILD = "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n"


@pytest.fixture(scope="module")
def expiring_emulator(workdir):
    """An emulator whose certificate expires tomorrow."""
    ca = harness.load_ca_module().make_ca(os.path.join(workdir, "expiring-ca"),
                                          prefix="expiring-", server_days=1)
    emu = harness.Emulator(workdir, ca, {harness.WIDGET_ID: harness.WIDGET_SECRET})
    yield emu.start()
    emu.stop()


def expiry_seconds(server):
    text = server.request("GET", "/pegadm/status?format=prometheus").text
    found = EXPIRY_RE.search(text)
    return int(found.group(1)) if found else None


def lines_with(server, number):
    return [line for line in server.error_log().splitlines() if number in line]


def test_a_certificate_expiring_tomorrow_is_warned_about(module_httpd, expiring_emulator):
    expiring_emulator.reset()
    server = module_httpd(portal_conf(expiring_emulator, STATUS),
                          startup_warnings=["PEGADM632"])
    warning = lines_with(server, "PEGADM632")
    assert len(warning) == 1, server.error_log()
    assert "[pegadm:warn]" in warning[0] and expiring_emulator.url in warning[0]
    assert "PegaDMCertificateWarnDays 14" in warning[0]
    left = expiry_seconds(server)
    assert left is not None and 22 * 3600 < left <= 86400, left
    doc = server.request("GET", "/pegadm/status").json()
    assert doc["widgets"][0]["serviceReachable"] is True
    assert 22 * 3600 < doc["widgets"][0]["serviceCertificateExpirySeconds"] <= 86400
    # still valid: sessions work
    assert_session(session_get(server, "alice"))


def test_a_certificate_valid_beyond_the_warning_days_draws_none(module_httpd, dm):
    # the usual throwaway certificate is valid for 30 days, the warning
    # comes 14 days ahead by default
    server = module_httpd(portal_conf(dm, STATUS))
    assert lines_with(server, "PEGADM632") == [] and lines_with(server, "PEGADM630") == []
    assert len(lines_with(server, "PEGADM633")) == 1, server.error_log()
    assert 29 * 86400 < expiry_seconds(server) <= 30 * 86400


def test_an_unreachable_service_is_warned_about_and_httpd_starts(module_httpd, dm,
                                                                 closed_port):
    url = "https://127.0.0.1:%d" % closed_port
    server = module_httpd(portal_conf(dm, STATUS, service_url=url),
                          startup_warnings=["PEGADM630"])
    warning = lines_with(server, "PEGADM630")
    assert len(warning) == 1, server.error_log()
    assert "[pegadm:warn]" in warning[0] and url in warning[0]
    assert server.request("GET", "/index.html").status == 200
    assert_json_error(session_get(server, "alice"), 503, "upstream_unavailable")
    assert expiry_seconds(server) is None
    assert server.request("GET", "/pegadm/status").json()["widgets"][0]["serviceReachable"] \
        is False
    assert ('pegadm_service_reachable{widget="%s"} 0' % harness.WIDGET_ID
            in server.request("GET", "/pegadm/status?format=prometheus").text)


def test_an_untrusted_certificate_is_warned_about(module_httpd, dm, workdir):
    other = harness.load_ca_module().make_untrusted(os.path.join(workdir, "preflight-other"))
    emu = harness.Emulator(workdir, other, {harness.WIDGET_ID: harness.WIDGET_SECRET}).start()
    try:
        # the module trusts the usual CA only
        server = module_httpd(portal_conf(None, STATUS, service_url=emu.url,
                                          ca_file=dm.ca_file), startup_warnings=["PEGADM630"])
        warning = lines_with(server, "PEGADM630")
        assert len(warning) == 1 and "certificate" in warning[0], server.error_log()
    finally:
        emu.stop()


def test_preflight_off_checks_nothing(module_httpd, dm, closed_port):
    server = module_httpd(portal_conf(dm, STATUS, service_url="https://127.0.0.1:%d"
                                      % closed_port, server_extra=["PegaDMPreflight Off"]))
    assert lines_with(server, "PEGADM63") == []


def test_a_child_starts_with_a_warm_connection(module_httpd, dm):
    server = module_httpd(portal_conf(dm, ONE_CHILD), mpm="prefork")
    before = dm.state()["connections"]
    assert_session(session_get(server, "alice"))
    after = dm.state()["connections"]
    # the state request is one connection; create and private data use the warm one
    assert after - before == 1, (before, after)


def test_the_check_is_repeated(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMPreflightInterval 1"]))
    start = dm.state()["connections"]
    harness.wait_for(lambda: dm.state()["connections"] >= start + 4, 10, 0.5,
                     "periodic checks reaching the service")
    assert lines_with(server, "PEGADM634") == [] and lines_with(server, "PEGADM635") == []


@pytest.mark.parametrize("directive", ["PegaDMCertificateWarnDays -1",
                                       "PegaDMCertificateWarnDays 3651",
                                       "PegaDMPreflightInterval 86401",
                                       "PegaDMPreflightInterval soon"])
def test_bad_values_are_refused(config_test, directive):
    result = config_test(harness.pegadm_conf(extra=[directive]))
    code, output = result
    assert code != 0, output
    assert directive.split()[0] in output, output
