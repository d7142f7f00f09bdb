"""Start-up checks (`apache2 -t`): a wrong configuration is refused with a
message naming the directive, the file and the line; a right one passes."""

import os
import re

import pytest

from pegadm_harness import WIDGET_ID, WIDGET_SECRET, location, session_location

WIDGET = "PegaDMWidgetID %s" % WIDGET_ID
SECRET = 'PegaDMJWTSecret "%s"' % WIDGET_SECRET
GOOD = WIDGET + "\n" + SECRET + "\n"


def mentions_line(output, number):
    """True if the output cites line `number` ("line 12" or "httpd.conf:12")."""
    return any(int(n) == number for n in re.findall(r"(?:line\s+|\.conf:)(\d+)", output))


def assert_refused(result, directive, offending):
    """Non-zero exit, the directive named, the file and line of `offending`."""
    rc, output = result
    assert rc != 0, "accepted:\n" + output
    assert directive in output, output
    assert os.path.basename(result.path) in output, output
    assert mentions_line(output, result.line_of(offending)), (
        "line %d not cited:\n%s" % (result.line_of(offending), output))


def assert_accepted(result):
    rc, output = result
    assert rc == 0 and "Syntax OK" in output, output


def test_a_correct_configuration_passes(config_test):
    assert_accepted(config_test(GOOD + session_location() + location(
        "/eager/", "PegaDM On") + location("/js", "SetHandler pegadm-bootstrap", auth=False)))


def test_widget_id_must_be_a_uuid(config_test):
    bad = "PegaDMWidgetID not-a-uuid"
    assert_refused(config_test(bad + "\n" + SECRET + "\n"), "PegaDMWidgetID", bad)


@pytest.mark.parametrize("directive", ["PegaDMServiceURL", "PegaDMPrivateDataURL"])
@pytest.mark.parametrize("url", [
    "http://example.com",
    "http://widget.chat.pega.digital",
    "http://128.0.0.1:8080",
    "http://127.0.0.1.example.com",
    "http://localhost.example.com",
    "ftp://127.0.0.1/",
    "not a url",
])
def test_service_urls_must_be_https_unless_loopback(config_test, directive, url):
    bad = "%s %s" % (directive, url) if " " not in url else '%s "%s"' % (directive, url)
    assert_refused(config_test(GOOD + bad + "\n"), directive, bad)


@pytest.mark.parametrize("directive", ["PegaDMServiceURL", "PegaDMPrivateDataURL"])
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1",
    "http://127.3.2.1:8080",
    "http://localhost:8080",
    "http://[::1]:8080",
    "https://widget.chat.pega.digital",
    "https://widget.use1.chat.pega.digital",
    "https://example.com:8443",
])
def test_https_and_loopback_urls_are_accepted(config_test, directive, url):
    suffix = "/private-data" if directive == "PegaDMPrivateDataURL" else ""
    assert_accepted(config_test(GOOD + "%s %s%s\n" % (directive, url, suffix)))


def test_eager_mode_needs_a_widget_id(config_test):
    result = config_test(SECRET + "\n" + location("/eager/", "PegaDM On"))
    assert_refused(result, "PegaDMWidgetID", "PegaDM On")


def test_eager_mode_needs_a_secret(config_test):
    result = config_test(WIDGET + "\n" + location("/eager/", "PegaDM On"))
    assert_refused(result, "PegaDMJWTSecret", "PegaDM On")


@pytest.mark.parametrize("handler", ["pegadm-session", "pegadm-bootstrap"])
def test_handler_without_widget_or_secret(config_test, handler):
    result = config_test(location("/h", "SetHandler %s" % handler))
    rc, output = result
    assert rc != 0, "accepted:\n" + output
    assert "PegaDMWidgetID" in output or "PegaDMJWTSecret" in output, output
    assert mentions_line(output, result.line_of("SetHandler")) or mentions_line(
        output, result.line_of("<Location /h>")), output


def test_handler_with_settings_at_server_level_passes(config_test):
    assert_accepted(config_test(GOOD + session_location()))


def test_missing_secret_file(config_test, workdir):
    bad = 'PegaDMJWTSecretFile "%s"' % os.path.join(workdir, "no-such-secret")
    assert_refused(config_test(WIDGET + "\n" + bad + "\n"), "PegaDMJWTSecretFile", bad)


def test_unreadable_secret_file(config_test, workdir):
    # A directory: unreadable as a file even for root, who ignores modes.
    bad = 'PegaDMJWTSecretFile "%s"' % workdir
    assert_refused(config_test(WIDGET + "\n" + bad + "\n"), "PegaDMJWTSecretFile", bad)


@pytest.mark.parametrize("bad", [
    "PegaDMTokenLifetime 0",
    "PegaDMTokenLifetime 301",
    "PegaDMTokenLifetime -5",
    "PegaDMTokenLifetime 60s",
    "PegaDMCacheTTL 0",
    "PegaDMCacheTTL abc",
    "PegaDMTimeout 0",
    "PegaDMConnectTimeout 0",
    "PegaDMCreateLimit 0 60",
    "PegaDM Maybe",
    "PegaDMLocalCache -1",
    "PegaDMLocalCache +5",
    "PegaDMLocalCache 5000001",
])
def test_out_of_range_values(config_test, bad):
    assert_refused(config_test(GOOD + bad + "\n"), bad.split()[0], bad)


@pytest.mark.parametrize("good", [
    "PegaDMTokenLifetime 1",
    "PegaDMTokenLifetime 300",
    "PegaDMCacheTTL 1",
    "PegaDMTimeout 1",
    "PegaDMCreateLimit 2 60",
])
def test_in_range_values(config_test, good):
    assert_accepted(config_test(GOOD + good + "\n"))


@pytest.mark.parametrize("bad, why", [
    # httpd's own argument parsing takes an empty word for a missing one
    ('PegaDMPrivateData "" "%{REMOTE_USER}"', "two or three arguments"),
    # "café" saved as latin-1: jansson refuses such a key, the field would vanish
    ('PegaDMPrivateData caf\udce9 "%{REMOTE_USER}"', r"key 'caf\xe9' is not valid UTF-8"),
    ('PegaDMPrivateData "x\udcc3(" "%{REMOTE_USER}" boolean', "is not valid UTF-8"),
])
def test_private_data_keys_must_be_utf8_and_not_empty(config_test, bad, why):
    result = config_test(GOOD + bad + "\n")
    assert_refused(result, "PegaDMPrivateData", bad)
    assert why in result.output, result.output


def test_private_data_keys_in_any_language_pass(config_test):
    assert_accepted(config_test(GOOD + 'PegaDMPrivateData "Kundennr_é€" "%{REMOTE_USER}"\n'))


def test_secret_file_readable_by_others_is_a_warning_not_an_error(config_test, workdir):
    path = os.path.join(workdir, "world-readable-secret")
    with open(path, "w") as fh:
        fh.write(WIDGET_SECRET + "\n")
    os.chmod(path, 0o644)
    rc, output = config_test(WIDGET + '\nPegaDMJWTSecretFile "%s"\n' % path)
    assert rc == 0, output
    assert "PegaDMJWTSecretFile" in output and path in output, output


def test_secret_file_private_to_root_is_silent(config_test, workdir):
    path = os.path.join(workdir, "private-secret")
    with open(path, "w") as fh:
        fh.write(WIDGET_SECRET + "\n")
    os.chmod(path, 0o600)
    rc, output = config_test(WIDGET + '\nPegaDMJWTSecretFile "%s"\n' % path)
    assert rc == 0 and path not in output, output
