"""Real identity providers on loopback, for the browser tests of
test_oidc.py and test_saml.py, and a portal that logs its users in through
them: Debian's mod_auth_openidc against an OpenID provider (the npm package
oidc-provider, tests/idp/oidc-provider.js), Debian's mod_auth_mellon against
a SAML identity provider (Debian's python3-lasso, tests/idp/saml_idp.py).

    OidcProvider   node tests/idp/oidc-provider.js, issuer http://127.0.0.1:<port>
    SamlIdp        tests/idp/saml_idp.py; the service provider made by
                   mellon_create_metadata, the identity provider's key by openssl
    Portal         an httpd on a port fixed before the providers start (they
                   must know where to send the browser back; one provider
                   serves the portals of a test module in turn), serving
                   /portal/ (the log-in), /pegadm/session, /pegadm/bootstrap.js
                   and a public /logged-out.html
    provide, serve the provider fixtures' start and stop; the portal
                   fixtures', with their crash check
    sign_in, assert_pega_has   the browser's log-in, what Pega then holds
    check_*        the scenarios both test modules run, each for its provider
    documented_conf            an example configuration of docs/identity.md

Both providers know the users of USERS, with these passwords. Needs
selenium, like browser.py; not imported by the package itself.
"""

import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import time

from selenium.webdriver.common.by import By

from .httpd import Httpd, assert_quiet_start, populate_server_root, render_httpd_conf, write_conf
from .settings import REPO_ROOT, WIDGET_ID, WIDGET_SECRET
from .util import free_port, make_public_dir, stop_process, write_file

IDP_DIR = os.path.join(REPO_ROOT, "tests", "idp")
OIDC_SCRIPT = os.path.join(IDP_DIR, "oidc-provider.js")
SAML_SCRIPT = os.path.join(IDP_DIR, "saml_idp.py")
NODE = shutil.which("node") or shutil.which("nodejs") or "node"
MELLON_CREATE_METADATA = "/usr/sbin/mellon_create_metadata"

USERS = {"alice": "alice-password", "bob": "bob-password"}
IDENTITY_DOC = os.path.join(REPO_ROOT, "docs", "identity.md")

# The portal's page: who is logged in, the session made with it (eager
# mode), a plain logout link, the widget through the bootstrap.
PORTAL_PAGE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Portal</title></head>
<body>
<p>Signed in as <strong id="user"><!--#echo var="REMOTE_USER" --></strong></p>
<p>Made with this page: <code id="eager-session"><!--#echo var="PEGADM_SESSION_ID" --></code></p>
<p>Given to the chat widget: <code id="widget-session"></code></p>
<p><a id="logout" href="<!--#echo var="PORTAL_LOGOUT" -->">Log out</a></p>
<script>
window.PegaUnifiedChatWidget = window.PegaUnifiedChatWidget || {};
window.PegaUnifiedChatWidget.onSessionInitialized = function (sessionId) {
  document.getElementById('widget-session').textContent = sessionId;
};
</script>
<script src="/pegadm/bootstrap.js"></script>
</body></html>
"""

LOGGED_OUT_PAGE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Logged out</title></head>
<body><p id="logged-out">You are logged out.</p>
<p><a id="log-in-again" href="/portal/">Log in</a></p>
<script src="/pegadm/bootstrap.js"></script>
</body></html>
"""


# node and its modules load slowly on a busy machine.
PROVIDER_START_TIMEOUT = 30.0


def read_line(proc, pattern, log_path, what, timeout=PROVIDER_START_TIMEOUT):
    """The first stdout line of `proc`, which must match `pattern`; bounded."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise AssertionError("%s did not start in %.0fs:\n%s" % (
                    what, timeout, read_log(log_path)))
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                raise AssertionError("%s exited:\n%s" % (what, read_log(log_path)))
            buf += chunk
    finally:
        sel.close()
    match = re.match(pattern, buf.split(b"\n", 1)[0])
    assert match, "%s printed %r" % (what, buf)
    return match


def read_log(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-5000:]
    except FileNotFoundError:
        return "(no log)"


class _Process:
    """A provider process whose first stdout line names its port."""

    name = "provider"

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "%s-%d.log" % (self.name, id(self)))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def spawn(self, args, cwd=None):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, cwd=cwd)
        try:
            self.port = int(read_line(self.proc, rb"listening (\d+)$", self.log_path,
                                      self.name).group(1))
        except AssertionError:
            self.stop()
            raise
        return self

    def log(self):
        return read_log(self.log_path)

    def stop(self):
        stop_process(self.proc)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


class OidcProvider(_Process):
    """tests/idp/oidc-provider.js: client "portal" with `secret`, which
    redirects to <portal>/portal/redirect_uri."""

    name = "oidc-provider"
    CLIENT_ID = "portal"

    def __init__(self, workdir, portal, secret):
        super().__init__(workdir)
        self.portal = portal
        self.secret = secret

    def start(self):
        if not os.path.isdir(os.path.join(IDP_DIR, "node_modules", "oidc-provider")):
            raise AssertionError("tests/idp/node_modules is missing: run "
                                 "`npm ci --prefix tests/idp` (scripts/test does)")
        return self.spawn([NODE, OIDC_SCRIPT, self.portal, self.secret])

    @property
    def issuer(self):
        return self.url


def make_key_pair(directory, name):
    """(key, certificate) paths of a fresh self-signed RSA key (openssl)."""
    key = os.path.join(directory, name + "-key.pem")
    cert = os.path.join(directory, name + "-cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-subj", "/CN=%s" % name, "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return key, cert


class SamlIdp(_Process):
    """tests/idp/saml_idp.py for one service provider, mod_auth_mellon at
    <portal><endpoint>, in a directory of its own: the service provider's
    key, certificate and metadata made as its administrator would, by
    mod_auth_mellon's mellon_create_metadata; the identity provider's key
    by openssl."""

    name = "saml-idp"

    def __init__(self, workdir, portal, endpoint):
        super().__init__(workdir)
        self.dir = make_public_dir(workdir, "saml-")
        entity_id = portal + endpoint + "/metadata"
        subprocess.run([MELLON_CREATE_METADATA, entity_id, portal + endpoint], cwd=self.dir,
                       check=True, capture_output=True, timeout=120)
        made = os.path.join(self.dir, re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z.]", "_",
                                                                  entity_id)))
        self.sp_key, self.sp_cert, self.sp_metadata = (made + ext for ext in
                                                       (".key", ".cert", ".xml"))
        self.idp_key, self.idp_cert = make_key_pair(self.dir, "idp")
        self.idp_metadata = os.path.join(self.dir, "idp-metadata.xml")

    def start(self):
        self.spawn([sys.executable, SAML_SCRIPT, "--key", self.idp_key,
                    "--cert", self.idp_cert, "--sp-metadata", self.sp_metadata,
                    "--metadata-out", self.idp_metadata])
        os.chmod(self.idp_metadata, 0o644)
        return self


def portal_base(port):
    return "http://127.0.0.1:%d" % port


class Portal(Httpd):
    """An httpd on a port chosen before it starts (by default at
    construction), so that the identity provider, which must know where
    the portal is, can start first and serve several portals in turn."""

    def __init__(self, workdir, conf="", port=None, **kwargs):
        super().__init__(workdir, conf, **kwargs)
        self.port = port or free_port()

    @property
    def base(self):
        return portal_base(self.port)

    def write_config(self):
        populate_server_root(self.root, self.users)
        portal = os.path.join(self.root, "htdocs", "portal")
        os.makedirs(portal, mode=0o755, exist_ok=True)
        write_file(os.path.join(portal, "index.shtml"), PORTAL_PAGE)
        write_file(os.path.join(self.root, "htdocs", "logged-out.html"),
                           LOGGED_OUT_PAGE)
        text = render_httpd_conf(self.root, self.port, self.conf_body, self.mpm,
                                         self.loglevel, self.load_pegadm)
        write_conf(self.conf_path, text)


def provide(provider_class, workdir, *args):
    """Starts a provider of provider_class for portals on a port chosen
    here (its portal_port), yields it and stops it (`yield from`)."""
    port = free_port()
    provider = provider_class(workdir, portal_base(port), *args).start()
    provider.portal_port = port
    try:
        yield provider
    finally:
        provider.stop()


def serve(portal, provider):
    """Starts the portal of `provider`, yields it and stops it; a child
    crash then fails the test (the portal fixtures: `yield from`)."""
    portal.provider = provider
    try:
        portal.start()
        assert_quiet_start(portal)
        yield portal
    finally:
        portal.stop()
    crashed = portal.crashes()
    assert not crashed, "httpd children crashed:\n" + "\n".join(crashed)


def pegadm_lines(emulator):
    """The Web Messaging connection and the two module locations."""
    return """\
PegaDMWidgetID {widget}
PegaDMJWTSecret "{secret}"
PegaDMServiceURL "{service}"
<Location "/pegadm/bootstrap.js">
    SetHandler pegadm-bootstrap
    Require all granted
</Location>
""".format(widget=WIDGET_ID, secret=WIDGET_SECRET, service=emulator.url)


# ---- in the browser ----

def sign_in(chromium, portal, provider, user):
    """Opens the portal, which sends the browser to `provider`; signs in
    there as `user` and lands back on the portal page."""
    chromium.get(portal.base + "/portal/")
    chromium.wait(lambda d: d.find_elements(By.ID, "username"),
                  "the identity provider's sign-in form")
    assert chromium.driver.current_url.startswith(provider.url + "/"), \
        chromium.driver.current_url
    chromium.element("username").send_keys(user)
    chromium.element("password").send_keys(USERS[user])
    chromium.element("sign-in").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "user"), "the portal page after signing in")
    assert chromium.text("user") == user


def assert_pega_has(dm, sid, private):
    """Pega made `sid` for private["customerId"] and holds exactly `private`
    as its private data."""
    state = dm.state()
    creates = [c["customerId"] for c in state["creates"] if c["sessionId"] == sid]
    assert creates == [private["customerId"]], creates
    pushed = [p["data"] for p in state["private_data"] if p["sessionId"] == sid]
    assert pushed == [private], "%r != [%r]" % (pushed, private)
    assert state["sessions"][sid]["privateData"] == private, state["sessions"][sid]
    return state


def documented_conf(heading, path=IDENTITY_DOC):
    """The first ```apache block after the line `heading` of a document."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    start = text.index("\n" + heading + "\n")
    match = re.compile(r"^```apache\n(.*?)^```$", re.M | re.S).search(text, start)
    assert match, "no apache block under %r in %s" % (heading, path)
    return match.group(1)


def check_the_login_reaches_pega(chromium, portal, dm, private_data):
    """alice signs in: the eager session and the one the chat opens carry
    her customer ID and private data, in Pega and on the page."""
    sign_in(chromium, portal, portal.provider, "alice")
    eager = chromium.text("eager-session")
    assert eager
    assert_pega_has(dm, eager, private_data["alice"])

    facts = chromium.open_chat()
    sid = facts["session"]
    assert facts["customer"] == "C-1001"
    assert json.loads(facts["private-data"]) == private_data["alice"]
    chromium.wait(lambda d: chromium.text("widget-session") == sid,
                  "onSessionInitialized to show the session")
    assert_pega_has(dm, sid, private_data["alice"])
    resp = chromium.fetch("/pegadm/session")
    assert resp["status"] == 200, resp
    assert json.loads(resp["body"]) == {"sessionId": sid, "widgetId": WIDGET_ID}


def check_logout_drops_the_chat_session(chromium, portal, dm, log_out, private_data):
    """alice signs in, chats, logs out through the portal's plain link and
    signs in again: a new session (one more create) with her private data."""
    sign_in(chromium, portal, portal.provider, "alice")
    first = chromium.open_chat()["session"]
    creates = len(dm.state()["creates"])
    log_out(chromium, portal)

    sign_in(chromium, portal, portal.provider, "alice")
    again = chromium.text("eager-session")
    assert again and again != first, "the session outlived the logout"
    assert_pega_has(dm, again, private_data["alice"])
    assert len(dm.state()["creates"]) == creates + 1
    resp = chromium.fetch("/pegadm/session")
    assert resp["status"] == 200, resp
    assert json.loads(resp["body"])["sessionId"] == again


def check_the_next_user_gets_nothing_of_the_first(chromium, portal, dm, log_out,
                                                  private_data):
    """alice chats and logs out; bob signs in at the same browser and finds
    nothing of her: not her session, her customer number or her name."""
    sign_in(chromium, portal, portal.provider, "alice")
    alice = chromium.open_chat()["session"]
    log_out(chromium, portal)

    sign_in(chromium, portal, portal.provider, "bob")
    assert alice not in chromium.driver.page_source
    facts = chromium.open_chat()
    bob = facts["session"]
    assert bob != alice
    assert facts["customer"] == "C-2002"
    assert json.loads(facts["private-data"]) == private_data["bob"]
    assert_pega_has(dm, bob, private_data["bob"])
    resp = chromium.fetch("/pegadm/session")
    assert json.loads(resp["body"])["sessionId"] == bob
    widget = chromium.element("pega-emu-widget").text
    for trace in (alice, "C-1001", "alice"):
        assert trace not in widget
        assert trace not in chromium.driver.page_source
