"""Customer identity from wherever the portal keeps it, with the real
httpd modules where they run on loopback: mod_ssl client certificates
(presented by curl), mod_auth_form with mod_session_cookie, mod_authnz_ldap
against a slapd the test starts, and a header set by a trusted front end.

mod_auth_openidc and mod_auth_mellon need an identity provider that cannot
be run here. Their variables are therefore STAND-INS: mod_setenvif copies a
test header into OIDC_CLAIM_email or MELLON_NAME_ID, which is what those
modules set after authentication (before the fixups phase). What is tested
is the module's side: that such request variables become the customer ID
and private data."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import urllib.parse

import pytest

import pegadm_harness as harness
from pegadm_harness import (APACHE_MODULES, assert_json_error, assert_session, echoed_headers,
                             location, parse_vars, pegadm_conf, same_origin_request, session_get)

OPENSSL_TIMEOUT = 60
CURL_TIMEOUT = 30
SLAPD_START_TIMEOUT = 10.0

CERT_USERS = {"alice": "alice", "utf8": "Zoë Ågren"}


def load(*names):
    return "".join("LoadModule %s_module %s/mod_%s.so\n" % (n, APACHE_MODULES, n)
                   for n in names)


def openssl(*args):
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True,
                          timeout=OPENSSL_TIMEOUT)
    assert proc.returncode == 0, "openssl %s: %s" % (args[0], proc.stderr)


def page_sid(resp):
    assert resp.status == 200, resp
    return parse_vars(resp.body)["SID"].decode("utf-8")


# --------------------------------------------------------------------------
# mod_ssl: client certificates
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_pki(workdir):
    """A throwaway client CA and one certificate per CERT_USERS entry, the
    common name being the user."""
    directory = harness.make_public_dir(workdir, "client-pki-")
    ca_key, ca_pem = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=pegadm-test-client-ca", "-keyout", ca_key,
            "-out", ca_pem, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = harness.write_file(os.path.join(directory, "client.ext"),
                             "basicConstraints=critical,CA:FALSE\n"
                             "keyUsage=critical,digitalSignature\n"
                             "extendedKeyUsage=clientAuth\n")
    certs = {"ca": ca_pem}
    for tag, cn in CERT_USERS.items():
        key, csr, pem = (os.path.join(directory, tag + suffix)
                         for suffix in (".key", ".csr", ".pem"))
        openssl("req", "-new", "-utf8", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=Portal/CN=%s" % cn,
                "-keyout", key, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", pem)
        certs[tag] = (pem, key)
    return certs


def tls_site(dm, ca, client_pki, expr, std_env_vars):
    port = harness.free_port()
    conf = (load("ssl") + pegadm_conf(dm) + """
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile "{cert}"
    SSLCertificateKeyFile "{key}"
    SSLCACertificateFile "{client_ca}"
    SSLVerifyClient optional
    SSLVerifyDepth 1
    {options}
    PegaDMCustomerID "{expr}"
    <Location /pegadm/session>
        SetHandler pegadm-session
    </Location>
    <Location /eager/>
        PegaDM On
    </Location>
</VirtualHost>
""".format(port=port, cert=ca["cert"], key=ca["key"], client_ca=client_pki["ca"],
           options="SSLOptions +StdEnvVars" if std_env_vars else "", expr=expr))
    return conf, port


def curl(port, path, ca, cert=None):
    """GET over TLS with curl, presenting the client certificate `cert`
    (a (pem, key) pair) if given. Returns a harness.Response."""
    args = ["curl", "--silent", "--show-error", "--max-time", str(CURL_TIMEOUT),
            "--cacert", ca["ca"], "--dump-header", "-",
            "https://127.0.0.1:%d%s" % (port, path)]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    proc = subprocess.run(args, capture_output=True, timeout=CURL_TIMEOUT + 10)
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = http.client.HTTPMessage()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return harness.Response(int(lines[0].split()[1]), headers, body)


# ap_expr reads mod_ssl's variables itself, so %{SSL_CLIENT_S_DN_CN} needs no
# SSLOptions; %{reqenv:...} sees them only with +StdEnvVars.
@pytest.mark.parametrize("expr,std_env_vars", [
    ("%{SSL_CLIENT_S_DN_CN}", False),
    ("%{SSL_CLIENT_S_DN_CN}", True),
    ("%{reqenv:SSL_CLIENT_S_DN_CN}", True),
], ids=["ssl-var", "ssl-var+StdEnvVars", "reqenv+StdEnvVars"])
def test_client_certificate_names_the_customer(module_httpd, dm, ca, client_pki, expr,
                                               std_env_vars):
    conf, port = tls_site(dm, ca, client_pki, expr, std_env_vars)
    module_httpd(conf)
    for tag, cn in CERT_USERS.items():
        cert = client_pki[tag]
        sid = assert_session(curl(port, "/pegadm/session", ca, cert))
        assert [c["sessionId"] for c in dm.creates_for(cn)] == [sid]
        assert dm.state()["sessions"][sid]["privateData"] == {"customerId": cn}
        assert page_sid(curl(port, "/eager/session.shtml", ca, cert)) == sid
    assert_json_error(curl(port, "/pegadm/session", ca), 401, "unauthenticated")
    assert page_sid(curl(port, "/eager/session.shtml", ca)) == "(none)"
    assert len(dm.state()["creates"]) == len(CERT_USERS)


def test_environment_variables_need_std_env_vars(module_httpd, dm, ca, client_pki):
    conf, port = tls_site(dm, ca, client_pki, "%{reqenv:SSL_CLIENT_S_DN_CN}", False)
    module_httpd(conf)
    cert = client_pki["alice"]
    assert_json_error(curl(port, "/pegadm/session", ca, cert), 401, "unauthenticated")
    assert page_sid(curl(port, "/eager/session.shtml", ca, cert)) == "(none)"
    assert dm.state()["creates"] == []


# --------------------------------------------------------------------------
# mod_auth_form with mod_session_cookie (and mod_session_crypto)
# --------------------------------------------------------------------------

FORM_AUTH = (
    "AuthType form",
    'AuthName "portal"',
    "AuthFormProvider file",
    "AuthUserFile conf/htpasswd",
    "Session On",
    "SessionCookieName portal_session path=/;httponly",
    'SessionCryptoPassphrase "test-only-session-passphrase"',
)


@pytest.fixture
def form_site(module_httpd, dm):
    conf = (load("request", "session", "session_cookie", "session_crypto", "auth_form")
            + pegadm_conf(dm)
            + location("/dologin", "SetHandler form-login-handler",
                       "AuthFormLoginSuccessLocation /index.html", *FORM_AUTH, auth=False)
            + location("/pegadm/session", "SetHandler pegadm-session", *FORM_AUTH,
                       "Require valid-user", auth=False)
            + location("/eager/", "PegaDM On", *FORM_AUTH, "Require valid-user", auth=False))
    return module_httpd(conf)


def form_login(server, user, password=harness.PASSWORD):
    body = urllib.parse.urlencode({"httpd_username": user, "httpd_password": password})
    resp = server.request("POST", "/dologin", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status in (302, 303), resp
    cookie = resp.header("Set-Cookie")
    assert cookie and cookie.startswith("portal_session="), resp
    return cookie.split(";", 1)[0]


def test_form_login_session_names_the_customer(form_site, dm):
    assert form_site.request("GET", "/pegadm/session").status == 401
    cookie = form_login(form_site, "alice")
    sid = assert_session(form_site.request("GET", "/pegadm/session",
                                           headers={"Cookie": cookie}))
    assert [c["sessionId"] for c in dm.creates_for("alice")] == [sid]
    resp = form_site.request("GET", "/eager/session.shtml", headers={"Cookie": cookie})
    assert page_sid(resp) == sid
    fresh = assert_session(form_site.request("POST", "/pegadm/session", headers={
        "Cookie": cookie, "Origin": form_site.origin}))
    assert fresh != sid
    assert [c["sessionId"] for c in dm.creates_for("alice")] == [sid, fresh]
    assert len(dm.state()["creates"]) == 2


def test_form_login_with_a_wrong_password_gets_nothing(form_site, dm):
    body = urllib.parse.urlencode({"httpd_username": "alice", "httpd_password": "wrong"})
    resp = form_site.request("POST", "/dologin", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 401, resp
    assert dm.state()["creates"] == []


# --------------------------------------------------------------------------
# mod_authnz_ldap against a slapd on loopback
# --------------------------------------------------------------------------

LDAP_BASE = "dc=example,dc=com"
LDAP_USERS = {"alice": "E-4711", "bob": None}
LDAP_PASSWORD = "ldap password of the test"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{base}"
rootdn "cn=admin,{base}"
directory {dir}/db
"""


def ldif():
    entries = ["dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\n"
               "dc: example\n" % LDAP_BASE,
               "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n" % LDAP_BASE]
    for uid, number in LDAP_USERS.items():
        entry = ("dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\n"
                 "sn: Test\nuserPassword: %s\n" % (uid, LDAP_BASE, uid, uid, LDAP_PASSWORD))
        if number:
            entry += "employeeNumber: %s\n" % number
        entries.append(entry)
    return "\n".join(entries)


@pytest.fixture(scope="module")
def slapd(workdir):
    """A slapd with its own database, listening on 127.0.0.1 only."""
    for tool in ("slapd", "slapadd"):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin"):
            pytest.fail("%s is missing: install Debian's slapd package" % tool)
    directory = harness.make_public_dir(workdir, "slapd-")
    os.makedirs(os.path.join(directory, "db"))
    conf = harness.write_file(os.path.join(directory, "slapd.conf"),
                              SLAPD_CONF.format(dir=directory, base=LDAP_BASE))
    data = harness.write_file(os.path.join(directory, "data.ldif"), ldif())
    subprocess.run(["/usr/sbin/slapadd", "-f", conf, "-l", data], check=True,
                   capture_output=True, timeout=30)
    port = harness.free_port()
    url = "ldap://127.0.0.1:%d/" % port
    subprocess.run(["/usr/sbin/slapd", "-f", conf, "-h", url], check=True,
                   capture_output=True, timeout=30)
    pid_file = os.path.join(directory, "slapd.pid")
    pid = int(harness.wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read(),
                               SLAPD_START_TIMEOUT, what="slapd's pid file"))
    harness.wait_for(lambda: port_open(port), SLAPD_START_TIMEOUT, what="slapd to listen")
    yield port
    os.kill(pid, 15)
    harness.wait_for(lambda: not pid_alive(pid), SLAPD_START_TIMEOUT, what="slapd to stop")


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_ldap_attribute_names_the_customer(module_httpd, dm, slapd):
    ldap_auth = ("AuthType Basic", 'AuthName "portal"', "AuthBasicProvider ldap",
                 'AuthLDAPURL "ldap://127.0.0.1:%d/ou=people,%s?uid,employeeNumber?one"'
                 % (slapd, LDAP_BASE), "Require valid-user")
    server = module_httpd(
        load("ldap", "authnz_ldap")
        + pegadm_conf(dm, extra=[
            'PegaDMCustomerID "%{reqenv:AUTHENTICATE_EMPLOYEENUMBER}"',
            'PegaDMPrivateData customerId "%{note:PEGADM_CUSTOMER_ID}"',
            'PegaDMPrivateData uid "%{reqenv:AUTHENTICATE_UID}"'])
        + location("/pegadm/session", "SetHandler pegadm-session", *ldap_auth, auth=False)
        + location("/eager/", "PegaDM On", *ldap_auth, auth=False))
    sid = assert_session(session_get(server, "alice", password=LDAP_PASSWORD))
    assert [c["sessionId"] for c in dm.creates_for("E-4711")] == [sid]
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": "E-4711",
                                                          "uid": "alice"}
    resp = server.request("GET", "/eager/session.shtml", user="alice", password=LDAP_PASSWORD)
    assert page_sid(resp) == sid
    # bob authenticates, but has no employeeNumber: no customer ID
    assert_json_error(session_get(server, "bob", password=LDAP_PASSWORD), 401,
                      "unauthenticated")
    assert session_get(server, "alice", password="wrong").status == 401
    assert len(dm.state()["creates"]) == 1


# --------------------------------------------------------------------------
# OpenID Connect and SAML: stand-in variables (see the module docstring)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("variable,value", [
    ("OIDC_CLAIM_email", "alice@example.com"),
    ("MELLON_NAME_ID", "_7f3e1b2c9d0a4e5f8a6b"),
])
def test_variables_of_sso_modules_name_the_customer(module_httpd, dm, variable, value):
    header = "X-Test-" + variable.replace("_", "-")
    # The stand-in for the SSO module copies a request header into the
    # variable, which the start-up walk rightly takes for client input.
    server = module_httpd(startup_warnings=["PEGADM703"], conf=pegadm_conf(dm, extra=[
        'SetEnvIf %s "^(.+)$" %s=$1' % (header, variable),
        'PegaDMCustomerID "%%{reqenv:%s}"' % variable,
        'PegaDMPrivateData customerId "%{note:PEGADM_CUSTOMER_ID}"',
        'PegaDMPrivateData portalUser "%{REMOTE_USER}"',
        "PegaDMPrivateData authenticated true boolean",
    ]) + harness.session_location() + location("/eager/", "PegaDM On"))
    sid = assert_session(session_get(server, "alice", headers={header: value}))
    assert [c["sessionId"] for c in dm.creates_for(value)] == [sid]
    assert dm.state()["sessions"][sid]["privateData"] == {
        "customerId": value, "portalUser": "alice", "authenticated": True}
    resp = server.request("GET", "/eager/session.shtml", user="alice", headers={header: value})
    assert page_sid(resp) == sid
    assert_json_error(session_get(server, "alice"), 401, "unauthenticated")
    assert len(dm.state()["creates"]) == 1


# --------------------------------------------------------------------------
# A trusted front end naming the customer in a header
# --------------------------------------------------------------------------

FRONT_END = "127.0.0.2"
CUSTOMER_HEADER = "X-Customer"


def request_from(source, server, method, path, headers=None):
    """A request from the loopback address `source` (127.0.0.0/8 is all
    local on Linux, so a test can be two different clients)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=harness.REQUEST_TIMEOUT,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return harness.Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


@pytest.fixture
def front_end_site(module_httpd, dm, echo_backend):
    # The README's recipe, with the front end at 127.0.0.2.
    return module_httpd(pegadm_conf(dm) + """
<If "%{{CONN_REMOTE_ADDR}} -ipmatch '{front}/32'">
    PegaDMCustomerID "%{{HTTP:{header}}}"
</If>
<Else>
    RequestHeader unset {header}
</Else>
""".format(front=FRONT_END, header=CUSTOMER_HEADER)
        + location("/pegadm/session", "SetHandler pegadm-session", auth=False)
        + location("/eager/", "PegaDM On", auth=False)
        + location("/app/", "PegaDM On", auth=False,
                   *["ProxyPass http://127.0.0.1:%d/" % echo_backend.port]))


def test_front_end_header_names_the_customer(front_end_site, dm):
    headers = {CUSTOMER_HEADER: "C-42"}
    sid = assert_session(request_from(FRONT_END, front_end_site, "GET", "/pegadm/session",
                                      headers))
    assert [c["sessionId"] for c in dm.creates_for("C-42")] == [sid]
    resp = request_from(FRONT_END, front_end_site, "GET", "/eager/session.shtml", headers)
    assert page_sid(resp) == sid
    resp = request_from(FRONT_END, front_end_site, "GET", "/app/page", headers)
    assert resp.status == 200, resp
    assert echoed_headers(resp, CUSTOMER_HEADER) == ["C-42"]


def test_header_from_anyone_else_is_ignored_and_stripped(front_end_site, dm):
    headers = {CUSTOMER_HEADER: "C-42"}
    assert_json_error(request_from("127.0.0.1", front_end_site, "GET", "/pegadm/session",
                                   headers), 401, "unauthenticated")
    resp = request_from("127.0.0.1", front_end_site, "GET", "/eager/session.shtml", headers)
    assert page_sid(resp) == "(none)"
    resp = request_from("127.0.0.1", front_end_site, "GET", "/app/page", headers)
    assert resp.status == 200, resp
    assert echoed_headers(resp, CUSTOMER_HEADER) == []
    assert dm.state()["creates"] == []


# --------------------------------------------------------------------------
# Typed private data
# --------------------------------------------------------------------------

def typed(value):
    """value with its JSON type spelt out: in Python True == 1 and 1 == 1.0,
    in the payload they are different things."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


TYPED_FIELDS = [
    "SetEnvIf Request_URI ^ ACCOUNT=4711 PROFILE={\"tier\":\"gold\",\"ids\":[1,2]}",
    "SetEnvIf Request_URI ^ NOT_A_NUMBER=12abc",
    "PegaDMPrivateData customerId \"%{REMOTE_USER}\"",
    "PegaDMPrivateData authenticated true boolean",
    "PegaDMPrivateData vip \"%{reqenv:VIP}\" boolean",
    "PegaDMPrivateData accountNumber \"%{reqenv:ACCOUNT}\" number",
    "PegaDMPrivateData balance -12.5 number",
    "PegaDMPrivateData profile \"%{reqenv:PROFILE}\" json",
    "PegaDMPrivateData zip 01234 string",
    "PegaDMPrivateData missing \"%{reqenv:NO_SUCH_VARIABLE}\" number",
    "PegaDMPrivateData broken \"%{reqenv:NOT_A_NUMBER}\" number",
]
EXPECTED_TYPED = {
    "customerId": "alice", "authenticated": True, "vip": True, "accountNumber": 4711,
    "balance": -12.5, "profile": {"tier": "gold", "ids": [1, 2]}, "zip": "01234",
}


@pytest.fixture
def typed_site(module_httpd, dm):
    # VIP comes from SetEnv, which mod_env applies in the fixups phase: eager
    # mode must run after it.
    return module_httpd(pegadm_conf(dm, extra=TYPED_FIELDS)
                        + harness.session_location()
                        + location("/eager/", "PegaDM On", "SetEnv VIP yes"),
                        users=["alice", "bob"])


def test_typed_private_data_arrives_as_json_types(typed_site, dm):
    resp = typed_site.request("GET", "/eager/session.shtml", user="alice")
    sid = page_sid(resp)
    assert sid != "(none)"
    assert typed(dm.state()["sessions"][sid]["privateData"]) == typed(EXPECTED_TYPED)


def test_a_value_that_does_not_convert_is_left_out_and_warned_once(typed_site, dm):
    """Once per child process: six sessions, but no process repeats it."""
    for user in ("alice", "bob") * 3:
        sid = assert_session(same_origin_request(typed_site, "POST", user))
        data = dm.state()["sessions"][sid]["privateData"]
        assert "broken" not in data and "missing" not in data, data
        assert data["customerId"] == user and data["accountNumber"] == 4711
        assert "vip" not in data  # SetEnv VIP is only in /eager/
    assert len(dm.state()["creates"]) == 6
    warnings = [line for line in typed_site.error_log().splitlines()
                if "PEGADM206" in line and "broken" in line]
    pids = [re.search(r"\[pid (\d+)", line).group(1) for line in warnings]
    assert warnings and len(pids) == len(set(pids)), warnings
    assert all("[pegadm:warn]" in line and "12abc" not in line for line in warnings)
    assert not any("PEGADM206" in line and "missing" in line
                   for line in typed_site.error_log().splitlines())


@pytest.mark.parametrize("field,message", [
    ("flag maybe boolean", "never a boolean"),
    ("count 12abc number", "never a number"),
    ("count 1e400 number", "never a number"),
    ("profile {bad json", "never a json"),
    ("flag true integer", "unknown type 'integer'"),
])
def test_constants_that_can_never_convert_stop_the_start(config_test, field, message):
    result = config_test(pegadm_conf(None, service_url="https://127.0.0.1:9",
                                     extra=["PegaDMPrivateData " + field]))
    returncode, output = result
    assert returncode != 0, output
    assert message in output and "PegaDMPrivateData" in output, output
    assert "line %d" % result.line_of("PegaDMPrivateData " + field) in output, output


def test_typed_expressions_are_checked_per_request(config_test):
    returncode, output = config_test(pegadm_conf(None, service_url="https://127.0.0.1:9",
                                                 extra=TYPED_FIELDS))
    assert returncode == 0, output
