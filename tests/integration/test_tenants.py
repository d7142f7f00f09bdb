"""Tenants: a .htaccess file can never make the module act (CONTRACT.md,
"Tenants"). The attack of the review, with the real mod_userdir and the
overrides Debian's userdir.conf grants every ~/public_html (FileInfo
AuthConfig Limit Indexes): a local user writes his own Basic user "alice"
and points a pegadm handler at his directory, which inherits the widget and
secret set at server level. None of it may reach the real alice's chat
session, while the main configuration's sections keep working, also where
an unrelated .htaccess is read."""

import os

import pytest

import pegadm_harness as harness
from pegadm_harness import (SSI_PAGE, assert_session, parse_vars, portal_conf, same_origin_request,
                            session_get)

AUTH = ("AuthType Basic\nAuthName tenant\nAuthUserFile \"{home}/htpasswd\"\n"
        "Require valid-user\n")

# tenant -> what his .htaccess adds to the authentication
TENANTS = {
    "sethandler": "SetHandler pegadm-session\n",
    "files": "<Files session>\nSetHandler pegadm-session\n</Files>\n",
    "iftrue": "<If \"true\">\nSetHandler pegadm-session\n</If>\n",
    "addhandler": "AddHandler pegadm-session .json\n",
    "rewrite": "RewriteEngine On\nRewriteRule ^ - [H=pegadm-session]\n",
    "eager": "PegaDM On\n",
    "forget": "PegaDMForget On\n",
    "status": "SetHandler pegadm-status\n",
}
HANDLER_TENANTS = ("sethandler", "files", "iftrue", "addhandler", "rewrite")


def userdir_conf(homes):
    """Debian's userdir.conf, for homes under `homes`; AllowOverrideList lets
    the module's own directives through as far as httpd is concerned."""
    return """\
LoadModule userdir_module {mods}/mod_userdir.so
LoadModule rewrite_module {mods}/mod_rewrite.so
UserDir "{homes}/*/public_html"
<Directory "{homes}/*/public_html">
    AllowOverride FileInfo AuthConfig Limit Indexes
    AllowOverrideList PegaDM PegaDMForget PegaDMInject
    Options MultiViews Indexes SymLinksIfOwnerMatch Includes
    AddOutputFilter INCLUDES .shtml
    Require method GET POST OPTIONS DELETE
</Directory>
""".format(mods=harness.APACHE_MODULES, homes=homes)


def make_homes(workdir):
    homes = harness.make_public_dir(workdir, "homes-")
    for tenant, extra in TENANTS.items():
        home = os.path.join(homes, tenant)
        public = os.path.join(home, "public_html")
        os.makedirs(public)
        os.chmod(home, 0o755)
        os.chmod(public, 0o755)
        # the tenant's own "alice", with the tests' password
        harness.write_file(os.path.join(home, "htpasswd"), harness.htpasswd_line("alice"))
        harness.write_file(os.path.join(public, ".htaccess"), AUTH.format(home=home) + extra)
        for name in ("session", "x.json"):
            harness.write_file(os.path.join(public, name), "a tenant's file\n")
        harness.write_file(os.path.join(public, "page.shtml"), SSI_PAGE)
    return homes


@pytest.fixture
def shared_host(module_httpd, dm, workdir):
    homes = make_homes(workdir)
    conf = userdir_conf(homes) + portal_conf(dm, harness.location("/eager/", "PegaDM On"))
    return module_httpd(conf)


def tenant_paths(tenant):
    base = "/~%s/" % tenant
    return [base + "session", base + "x.json", base + "page.shtml"]


def test_a_tenants_handler_never_serves_the_real_users_session(shared_host, dm):
    real = assert_session(session_get(shared_host, "alice"))
    creates = dm.create_count()
    for tenant in HANDLER_TENANTS:
        for path in tenant_paths(tenant)[:2]:
            for method in ("GET", "POST", "DELETE"):
                resp = same_origin_request(shared_host, method, "alice", path=path)
                assert resp.status not in (200, 204) or b"sessionId" not in resp.body, (
                    tenant, path, method, resp)
                assert real.encode() not in resp.body, (tenant, path, method, resp)
    # nothing created, renewed or dropped for alice
    assert dm.create_count() == creates
    assert assert_session(session_get(shared_host, "alice")) == real


def test_a_tenants_status_handler_shows_nothing(shared_host):
    resp = shared_host.request("GET", "/~status/session", user="alice")
    assert resp.status != 200 or b"pegadm_" not in resp.body, resp


def test_eager_mode_from_a_htaccess_never_exports_a_session(shared_host, dm):
    assert_session(session_get(shared_host, "alice"))
    resp = shared_host.request("GET", "/~eager/page.shtml", user="alice")
    assert resp.status != 200 or parse_vars(resp.body)["SID"] == b"", resp


def test_forget_from_a_htaccess_drops_nothing(shared_host, dm):
    real = assert_session(session_get(shared_host, "alice"))
    shared_host.request("GET", "/~forget/page.shtml", user="alice")
    assert assert_session(session_get(shared_host, "alice")) == real


def test_the_main_configuration_works_beside_an_unrelated_htaccess(module_httpd, dm, workdir):
    conf = portal_conf(dm, harness.location("/eager/", "PegaDM On"),
                       '<Directory "%s">\n    AllowOverride FileInfo\n</Directory>\n' % workdir)
    server = module_httpd(conf)
    for sub in ("htdocs", "htdocs/eager"):
        harness.write_file(os.path.join(server.root, sub, ".htaccess"),
                           "Header set X-Htaccess read\n")
    sid = assert_session(session_get(server, "alice"))
    assert assert_session(same_origin_request(server, "POST", "alice")) != sid
    page = server.request("GET", "/eager/session.shtml", user="alice")
    assert page.status == 200 and page.header("X-Htaccess") == "read", page
    assert parse_vars(page.body)["SID"], page
    assert server.request("GET", harness.BOOTSTRAP_PATH).status == 200
