#!/usr/bin/python3
"""A SAML 2.0 identity provider for the integration tests, on loopback only,
built on lasso (Debian's python3-lasso, the library mod_auth_mellon itself
uses): single sign-on over HTTP-Redirect (the AuthnRequest) and HTTP-POST
(the signed Response), single logout over HTTP-Redirect begun by the
service provider or here (GET /logout), for one service provider whose
metadata it is given. Users alice and bob sign in with a password; their
attributes include a customer number and an email.

    saml_idp.py --key KEY --cert CERT --sp-metadata SP.xml --metadata-out IDP.xml

It listens on a free port of 127.0.0.1, writes its own metadata (entity ID
http://127.0.0.1:<port>/metadata) to --metadata-out, then prints one line,
"listening <port>", on stdout.
"""

import argparse
import base64
import datetime
import html
import http.cookies
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lasso

USERS = {
    "alice": {
        "password": "alice-password",
        "name_id": "6a1c0f7e-alice",
        "attributes": {
            "uid": ["alice"],
            "mail": ["alice@example.com"],
            "displayName": ["Alice Example"],
            "customerNumber": ["C-1001"],
            "accountNumber": ["4711"],
            "vip": ["true"],
            "groups": ["customers", "gold"],
        },
    },
    "bob": {
        "password": "bob-password",
        "name_id": "9d2e4b1a-bob",
        "attributes": {
            "uid": ["bob"],
            "mail": ["bob@example.com"],
            "displayName": ["Bob Example"],
            "customerNumber": ["C-2002"],
            "accountNumber": ["815"],
            "vip": ["false"],
            "groups": ["customers"],
        },
    },
}

COOKIE = "test-idp-session"
PEM_LINES = ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----")

METADATA = """\
<?xml version="1.0" encoding="UTF-8"?>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"
                  xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
                  entityID="{base}/metadata">
  <IDPSSODescriptor WantAuthnRequestsSigned="true"
                    protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data>
        <ds:X509Certificate>{cert}</ds:X509Certificate>
      </ds:X509Data></ds:KeyInfo>
    </KeyDescriptor>
    <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                         Location="{base}/slo"/>
    <NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</NameIDFormat>
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                         Location="{base}/sso"/>
  </IDPSSODescriptor>
</EntityDescriptor>
"""


def page(title, body):
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>"
            "<body><h1>%s</h1>%s</body></html>\n" % (html.escape(title), html.escape(title),
                                                      body)).encode()


def iso(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Idp:
    """The lasso server and the users' sessions at the identity provider
    (cookie value -> user and lasso session dump). Lasso is not thread-safe:
    every use holds the lock."""

    def __init__(self, metadata, key, cert, sp_metadata_path):
        self.server = lasso.Server.newFromBuffers(metadata, key, None, cert)
        self.server.signatureMethod = lasso.SIGNATURE_METHOD_RSA_SHA256
        self.server.addProvider(lasso.PROVIDER_ROLE_SP, sp_metadata_path)
        self.entity_id = self.server.providerId
        self.sessions = {}
        self.lock = threading.Lock()

    def sign_on(self, query, user, session_dump):
        """The auto-submitting POST form answering the AuthnRequest in
        `query` for `user`, and the lasso session dump afterwards."""
        with self.lock:
            login = lasso.Login(self.server)
            if session_dump:
                login.setSessionFromDump(session_dump)
            login.processAuthnRequestMsg(query)
            login.validateRequestMsg(True, True)
            now = datetime.datetime.now(datetime.timezone.utc)
            login.buildAssertion(lasso.SAML2_AUTHN_CONTEXT_PASSWORD, iso(now),
                                 iso(now + datetime.timedelta(hours=1)),
                                 iso(now - datetime.timedelta(minutes=1)),
                                 iso(now + datetime.timedelta(minutes=5)))
            # The user's own persistent name ID, not one lasso makes up.
            name_id = lasso.Saml2NameID()
            name_id.format = lasso.SAML2_NAME_IDENTIFIER_FORMAT_PERSISTENT
            name_id.nameQualifier = self.entity_id
            name_id.spNameQualifier = login.remoteProviderId
            name_id.content = USERS[user]["name_id"]
            login.assertion.subject.nameID = name_id
            login.nameIdentifier = name_id
            login.assertion.attributeStatement = [attribute_statement(user)]
            login.buildAuthnResponseMsg()
            return post_form(login.msgUrl, login.msgBody, login.msgRelayState), \
                login.session.dump() if login.session else None

    def log_out(self, query, session_dump):
        """The URL answering the LogoutRequest in `query`."""
        with self.lock:
            logout = lasso.Logout(self.server)
            if session_dump:
                logout.setSessionFromDump(session_dump)
            logout.processRequestMsg(query)
            try:
                logout.validateRequest()
            except lasso.Error as err:
                # The response then says why (lasso sets its status).
                print("logout request not valid: %s" % err, file=sys.stderr)
            logout.buildResponseMsg()
            return logout.msgUrl


    def log_out_everywhere(self, session_dump):
        """The URL of a LogoutRequest to the service provider the user is
        signed in to, for a logout begun here (IdP-initiated)."""
        with self.lock:
            logout = lasso.Logout(self.server)
            logout.setSessionFromDump(session_dump)
            logout.initRequest(None, lasso.HTTP_METHOD_REDIRECT)
            logout.buildRequestMsg()
            return logout.msgUrl

    def logged_out(self, query):
        """Checks the service provider's LogoutResponse in `query`."""
        with self.lock:
            logout = lasso.Logout(self.server)
            logout.processResponseMsg(query)


def attribute_statement(user):
    statement = lasso.Saml2AttributeStatement()
    attributes = []
    for name, values in USERS[user]["attributes"].items():
        attribute = lasso.Saml2Attribute()
        attribute.name = name
        attribute.nameFormat = lasso.SAML2_ATTRIBUTE_NAME_FORMAT_BASIC
        attribute_values = []
        for value in values:
            text = lasso.MiscTextNode.newWithString(value)
            text.textChild = True
            attribute_value = lasso.Saml2AttributeValue()
            attribute_value.any = [text]
            attribute_values.append(attribute_value)
        attribute.attributeValue = attribute_values
        attributes.append(attribute)
    statement.attribute = attributes
    return statement


def post_form(url, saml_response, relay_state):
    fields = '<input type="hidden" name="SAMLResponse" value="%s">' % html.escape(saml_response)
    if relay_state:
        fields += '<input type="hidden" name="RelayState" value="%s">' % html.escape(relay_state)
    return page("Signing you in", """
<form id="saml-post" method="post" action="%s">%s
<noscript><button type="submit">Continue</button></noscript></form>
<script>document.getElementById('saml-post').submit();</script>""" % (html.escape(url), fields))


def login_form(query, failed):
    return page("Sign in to the SAML identity provider", """
%s<form method="post" action="/sso/login">
<input type="hidden" name="request" value="%s">
<label>User <input id="username" name="username" autocomplete="off"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="sign-in" type="submit">Sign in</button>
</form>""" % ('<p id="login-failed">Wrong user name or password.</p>' if failed else "",
              html.escape(query)))


class Handler(BaseHTTPRequestHandler):
    server_version = "test-saml-idp"

    def reply(self, status, body=b"", content_type="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def session_cookie(self):
        cookies = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        return cookies[COOKIE].value if COOKIE in cookies else None

    def do_GET(self):
        idp = self.server.idp
        path, _, query = self.path.partition("?")
        cookie = self.session_cookie()
        known = idp.sessions.get(cookie)
        try:
            if path == "/metadata":
                self.reply(200, self.server.metadata.encode(), "application/samlmetadata+xml")
            elif path == "/sso" and known:
                body, known["dump"] = idp.sign_on(query, known["user"], known["dump"])
                self.reply(200, body)
            elif path == "/sso":
                self.reply(200, login_form(query, False))
            elif path == "/logout" and known:
                # the user logs out here: the service provider is told first
                url = idp.log_out_everywhere(known["dump"])
                idp.sessions.pop(cookie, None)
                self.reply(303, headers=(("Location", url), (
                    "Set-Cookie", "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" % COOKIE)))
            elif path == "/slo" and "SAMLResponse=" in query:
                idp.logged_out(query)
                self.reply(200, page("Signed out", '<p id="signed-out">You are signed out.</p>'))
            elif path == "/slo":
                url = idp.log_out(query, known["dump"] if known else None)
                idp.sessions.pop(cookie, None)
                self.reply(303, headers=(("Location", url), (
                    "Set-Cookie", "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" % COOKIE)))
            else:
                self.reply(404, b"not here\n", "text/plain")
        except lasso.Error as err:
            self.reply(400, ("SAML error: %s\n" % err).encode(), "text/plain")

    def do_POST(self):
        idp = self.server.idp
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/sso/login" or length > 65536:
            self.reply(404, b"not here\n", "text/plain")
            return
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        user = form.get("username", [""])[0]
        query = form.get("request", [""])[0]
        if user not in USERS or form.get("password", [""])[0] != USERS[user]["password"]:
            self.reply(200, login_form(query, True))
            return
        try:
            body, dump = idp.sign_on(query, user, None)
        except lasso.Error as err:
            self.reply(400, ("SAML error: %s\n" % err).encode(), "text/plain")
            return
        cookie = secrets.token_urlsafe(24)
        idp.sessions[cookie] = {"user": user, "dump": dump}
        self.reply(200, body, headers=(
            ("Set-Cookie", "%s=%s; Path=/; HttpOnly; SameSite=Lax" % (COOKIE, cookie)),))

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", required=True, help="the signing key (PEM)")
    parser.add_argument("--cert", required=True, help="its certificate (PEM)")
    parser.add_argument("--sp-metadata", required=True, help="the service provider's metadata")
    parser.add_argument("--metadata-out", required=True, help="where to write the IdP's metadata")
    args = parser.parse_args()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    with open(args.cert) as fh:
        cert_pem = fh.read()
    cert = "".join(line for line in cert_pem.splitlines()
                   if line.strip() and line.strip() not in PEM_LINES)
    base64.b64decode(cert, validate=True)
    httpd.metadata = METADATA.format(base="http://127.0.0.1:%d" % port, cert=cert)
    with open(args.metadata_out, "w") as fh:
        fh.write(httpd.metadata)
    with open(args.key) as fh:
        key = fh.read()
    httpd.idp = Idp(httpd.metadata, key, cert_pem, args.sp_metadata)
    print("listening %d" % port, flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
