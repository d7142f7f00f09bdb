"""The harness itself, with httpd but without mod_pegadm: if these fail, the
module's tests cannot be trusted either way."""

import pytest

import pegadm_harness as harness

ODD_USERS = [
    "alice",
    'o\'brien "the quoted"',
    "back\\slash\\\\",
    "Zoë Ågren 東京 🙂",
    "x" * 300,
]


def test_htpasswd_names_arrive_byte_exact_through_basic_auth(httpd_factory):
    server = httpd_factory(
        harness.location("/cgi-bin/"), users=ODD_USERS, load_pegadm=False)
    for user in ODD_USERS:
        resp = server.request("GET", "/cgi-bin/session.cgi", user=user)
        assert resp.status == 200, resp
        assert harness.parse_vars(resp.body)["USER"] == user.encode("utf-8")


def test_basic_auth_refuses_wrong_or_missing_credentials(httpd_factory):
    server = httpd_factory(harness.location("/cgi-bin/"), load_pegadm=False)
    assert server.request("GET", "/cgi-bin/session.cgi", user="alice",
                          password="wrong").status == 401
    assert server.request("GET", "/cgi-bin/session.cgi").status == 401
    assert server.request("GET", "/cgi-bin/session.cgi", user="alice").status == 200


def test_htpasswd_refuses_names_it_cannot_store():
    for name in ("a:b", "a\nb", "#comment", " padded"):
        with pytest.raises(ValueError):
            harness.htpasswd_line(name)


@pytest.mark.parametrize("mpm", harness.MPMS)
def test_each_mpm_starts_and_serves_ssi(httpd_factory, mpm):
    server = httpd_factory(mpm=mpm, load_pegadm=False)
    resp = server.request("GET", "/session.shtml")
    assert resp.status == 200
    # Without the module the variables are unset, which mod_include shows so.
    assert harness.parse_vars(resp.body)["SID"] == b"(none)"


def test_proxy_to_echo_backend(httpd_factory, echo_backend):
    server = httpd_factory(
        "RequestHeader unset X-PegaDM-Session early\n"
        + harness.location("/app/", "ProxyPass http://127.0.0.1:%d/" % echo_backend.port,
                           auth=False),
        load_pegadm=False)
    resp = server.request("GET", "/app/x", headers={"X-PegaDM-Session": "forged"})
    assert resp.status == 200, resp
    assert resp.json()["path"] == "/x"
    assert harness.echoed_headers(resp, "X-PegaDM-Session") == []


def test_config_test_tells_good_from_bad(workdir):
    rc, output = harness.config_test("", workdir=workdir, load_pegadm=False)
    assert rc == 0 and "Syntax OK" in output, output
    rc, output = harness.config_test("NoSuchDirective on\n", workdir=workdir,
                                     load_pegadm=False)
    assert rc != 0 and "NoSuchDirective" in output, output
