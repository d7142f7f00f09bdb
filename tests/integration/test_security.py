"""Hostile caches, tenants, pages and cache writers: the properties of the
security model (docs/security.md), one group of tests per property."""

import os
import re

import pytest

import harness
from harness import WIDGET_ID, WIDGET_SECRET, location, session_location

WIDGET = "PegaDMWidgetID %s" % WIDGET_ID
SECRET = 'PegaDMJWTSecret "%s"' % WIDGET_SECRET
GOOD = WIDGET + "\n" + SECRET + "\n"


def cited_lines(output):
    return {int(n) for n in re.findall(r"(?:line\s+|\.conf:)(\d+)", output)}


def assert_refused(result, directive, offending):
    rc, output = result
    assert rc != 0, "accepted:\n" + output
    assert directive in output, output
    assert os.path.basename(result.path) in output, output
    assert result.line_of(offending) in cited_lines(output), output


def assert_warned(result, number, directive, offending):
    """Accepted, with warning `number` naming the directive, file and line."""
    rc, output = result
    assert rc == 0 and "Syntax OK" in output, output
    lines = [line for line in output.splitlines() if number in line]
    assert lines, output
    assert any(directive in line and os.path.basename(result.path) in line
               and result.line_of(offending) in cited_lines(line) for line in lines), output


def assert_silent(result, number):
    rc, output = result
    assert rc == 0 and "Syntax OK" in output, output
    assert number not in output, output


# ---- no bearer token in clear on the network ----

@pytest.mark.parametrize("url_directive", ["PegaDMServiceURL", "PegaDMPrivateDataURL"])
@pytest.mark.parametrize("proxy", ["http://proxy.example:3128", "https://10.1.2.3:3128"])
def test_plain_http_service_through_a_remote_proxy_is_refused(config_test, url_directive, proxy):
    bad = "PegaDMProxy %s" % proxy
    result = config_test(GOOD + "%s http://127.0.0.1:8080/x\n%s\n" % (url_directive, bad))
    assert_refused(result, "PegaDMProxy", bad)
    assert url_directive in result.output


def test_a_remote_proxy_in_a_location_below_a_plain_http_service_is_refused(config_test):
    bad = "PegaDMProxy http://proxy.example:3128"
    result = config_test(GOOD + "PegaDMServiceURL http://localhost:8080\n"
                         + location("/app/", bad, "PegaDM On"))
    assert_refused(result, "PegaDMProxy", bad)


def test_a_plain_http_service_in_a_location_below_a_remote_proxy_is_refused(config_test):
    bad = "PegaDMServiceURL http://[::1]:8080"
    result = config_test(GOOD + "PegaDMProxy http://proxy.example:3128\n"
                         + location("/app/", bad, "PegaDM On"))
    assert_refused(result, "PegaDMServiceURL", bad)


@pytest.mark.parametrize("conf", [
    "PegaDMServiceURL http://127.0.0.1:8080\nPegaDMProxy http://127.0.0.1:3128\n",
    "PegaDMServiceURL http://localhost:8080\nPegaDMProxy http://[::1]:3128\n",
    "PegaDMServiceURL https://dm.example\nPegaDMProxy http://proxy.example:3128\n",
    "PegaDMProxy http://proxy.example:3128\n",
])
def test_https_or_a_loopback_proxy_passes(config_test, conf):
    rc, output = config_test(GOOD + conf)
    assert rc == 0 and "Syntax OK" in output, output
