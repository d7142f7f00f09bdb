"""PegaDMForget where the logout location knows nobody (mod_auth_openidc's
?logout= is answered in its authentication hook, mod_auth_mellon's logout
endpoint runs unauthenticated): where the module hands a session to a
log-in it sets the logout cookie, which names the customer sealed under the
widget's key; a PegaDMForget scope opens it before any authentication,
drops that customer's session and expires the cookie. test_oidc.py and
test_saml.py run this with the real modules in a browser.
"""

import http.client
import re
import ssl

from pegadm_harness import (APACHE_MODULES, OTHER_WIDGET_ID, OTHER_WIDGET_SECRET,
                            REQUEST_TIMEOUT, SESSION_PATH, WIDGET_ID, KeptConnection, Response,
                            assert_session, basic_auth_header, free_port, location,
                            portal_conf, session_get)


def cookie_name(widget):
    """One logout cookie per widget: its name carries the widget ID's first
    12 hexadecimal digits."""
    return "pegadm_logout_" + widget.replace("-", "").lower()[:12]


COOKIE = cookie_name(WIDGET_ID)
OLD_COOKIE = "pegadm_logout"  # the name of every widget's cookie before
# The logout location authenticates nobody, as the SSO modules' do not.
BYE = location("/bye", "PegaDMForget On", "Require all granted", auth=False)


def logout_cookies(resp, name=COOKIE):
    """The values the answer sets for the logout cookie, with attributes."""
    return [v for v in resp.headers.get_all("Set-Cookie") or ()
            if v.startswith(name + "=")]


def issued_cookie(resp, secure=False, name=COOKIE):
    [value] = logout_cookies(resp, name)
    attributes = [a.strip() for a in value.split(";")[1:]]
    assert sorted(attributes) == ["HttpOnly", "Max-Age=172800", "Path=/", "SameSite=Lax"] + (
        ["Secure"] if secure else []), value
    return value.split(";", 1)[0]


def bye(server, cookie):
    return server.request("GET", "/bye", headers={"Cookie": cookie} if cookie else {})


def test_a_handed_out_session_sets_an_opaque_logout_cookie(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE))
    resp = session_get(server, "alice")
    assert_session(resp)
    cookie = issued_cookie(resp)
    value = cookie.split("=", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", value), cookie
    assert "alice" not in value
    # The browser that has it is not given it again.
    again = session_get(server, "alice", headers={"Cookie": cookie})
    assert_session(again)
    assert logout_cookies(again) == []
    # Another user's log-in gets a cookie of its own.
    assert issued_cookie(session_get(server, "bob", headers={"Cookie": cookie})) != cookie


def test_no_cookie_where_no_scope_forgets(module_httpd, dm):
    server = module_httpd(portal_conf(dm, location("/eager/", "PegaDM On")))
    resp = server.request("GET", "/eager/session.shtml", user="alice")
    assert resp.status == 200 and b"SID=[" in resp.body, resp
    assert logout_cookies(resp) == []
    assert_session(resp := session_get(server, "alice"))
    assert logout_cookies(resp) == []


def test_forget_drops_the_session_the_cookie_names(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE))
    resp = session_get(server, "alice")
    first = assert_session(resp)
    bob = assert_session(session_get(server, "bob"))
    answer = bye(server, issued_cookie(resp))
    assert answer.status == 404  # the location's own answer, unchanged
    [expired] = logout_cookies(answer)
    assert expired.startswith(COOKIE + "=;") and "Max-Age=0" in expired, expired
    assert assert_session(session_get(server, "alice")) != first
    assert len(dm.creates_for("alice")) == 2
    assert assert_session(session_get(server, "bob")) == bob


def test_a_cross_site_front_channel_logout_drops_the_session_the_cookie_names(
        module_httpd, dm):
    """The identity provider sends the browser back from its own site
    (SAML single logout, OpenID Connect front-channel logout): the request
    is cross-site, and forgets all the same (docs/security.md)."""
    server = module_httpd(portal_conf(dm, BYE))
    resp = session_get(server, "alice")
    first = assert_session(resp)
    answer = server.request("GET", "/bye", headers={
        "Cookie": issued_cookie(resp), "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe",
        "Referer": "https://idp.example/logout"})
    assert answer.status == 404
    [expired] = logout_cookies(answer)
    assert "Max-Age=0" in expired, expired
    assert assert_session(session_get(server, "alice")) != first
    assert len(dm.creates_for("alice")) == 2


def test_no_tampered_or_foreign_cookie_drops_anything(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE))
    resp = session_get(server, "alice")
    first = assert_session(resp)
    name, value = issued_cookie(resp).split("=", 1)
    flipped = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    other = module_httpd(portal_conf(dm, BYE, widget=OTHER_WIDGET_ID,
                                     secret=OTHER_WIDGET_SECRET))
    foreign = issued_cookie(session_get(other, "alice", headers={}),
                            name=cookie_name(OTHER_WIDGET_ID))
    for cookie in (None, name + "=" + flipped, name + "=" + value[:-4], name + "=",
                   foreign, name + "=" + "x" * 2000):
        assert bye(server, cookie).status == 404
        assert assert_session(session_get(server, "alice")) == first, cookie
    assert len(dm.creates_for("alice")) == 1 + 1  # one each server


def test_a_wrong_cookie_is_never_taken_for_the_customers_own(module_httpd, dm):
    """A child notes the cookie it sealed or opened for a customer, and then
    takes the same value for it without opening it again: any other value
    (another customer's, a tampered one, the customer's own under another
    widget) is still opened, found wrong, and replaced."""
    server = module_httpd(portal_conf(dm, BYE))
    other = module_httpd(portal_conf(dm, BYE, widget=OTHER_WIDGET_ID,
                                     secret=OTHER_WIDGET_SECRET))
    foreign = issued_cookie(session_get(other, "alice"), name=cookie_name(OTHER_WIDGET_ID))
    conn = KeptConnection(server)  # one child throughout: its note is what is tested

    def as_alice(cookie):
        resp = conn.request("GET", SESSION_PATH, user="alice",
                            headers={"Cookie": cookie} if cookie else {})
        assert_session(resp)
        return logout_cookies(resp)

    try:
        [issued] = as_alice(None)
        own = issued.split(";", 1)[0]
        bob = issued_cookie(session_get(server, "bob"))
        name, value = own.split("=", 1)
        flipped = name + "=" + value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
        for _ in range(3):
            assert as_alice(own) == []  # noted: taken as it is
        for wrong in (bob, flipped, foreign, name + "=" + value[:-4]):
            [replaced] = as_alice(wrong)
            assert replaced.split(";", 1)[0] != wrong, wrong
            assert as_alice(own) == []  # still the customer's
    finally:
        conn.close()


def test_over_https_the_cookie_is_secure(module_httpd, dm, ca):
    port = free_port()
    server = module_httpd('LoadModule ssl_module "%s/mod_ssl.so"\n' % APACHE_MODULES
                          + portal_conf(dm, BYE) + """
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile "{cert}"
    SSLCertificateKeyFile "{key}"
</VirtualHost>
""".format(port=port, cert=ca["cert"], key=ca["key"]))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT,
                                       context=ssl.create_default_context(cafile=ca["ca"]))
    try:
        conn.request("GET", "/pegadm/session",
                     headers={"Authorization": basic_auth_header("alice")})
        raw = conn.getresponse()
        resp = Response(raw.status, raw.headers, raw.read())
    finally:
        conn.close()
    assert_session(resp)
    issued_cookie(resp, secure=True)
    # the same server over plain HTTP: no Secure
    issued_cookie(session_get(server, "bob"))


# ---- one cookie per widget, duplicates, replays, lengths (issue 23, F17) ----

class Jar:
    """What a browser keeps: one value per cookie name (and path, all /)."""

    def __init__(self):
        self.values = {}

    def take(self, resp):
        for header in resp.headers.get_all("Set-Cookie") or ():
            name, rest = header.split("=", 1)
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.values.pop(name, None)
            else:
                self.values[name] = value
        return resp

    def header(self):
        return "; ".join("%s=%s" % kv for kv in self.values.items())


OTHER_SESSION = location("/w2/session", "SetHandler pegadm-session",
                         "PegaDMWidgetID %s" % OTHER_WIDGET_ID,
                         'PegaDMJWTSecret "%s"' % OTHER_WIDGET_SECRET)


def test_two_widgets_on_one_host_keep_a_logout_cookie_each(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE, OTHER_SESSION))
    jar = Jar()
    first = assert_session(jar.take(session_get(server, "alice")))
    second = jar.take(session_get(server, "alice", path="/w2/session",
                                  headers={"Cookie": jar.header()}))
    assert second.status == 200 and second.json()["widgetId"] == OTHER_WIDGET_ID, second
    assert len(jar.values) == 2, jar.values
    assert bye(server, jar.header()).status == 404
    assert assert_session(session_get(server, "alice")) != first


def test_a_planted_duplicate_does_not_stop_the_logout(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE))
    for order in (0, 1):
        resp = session_get(server, "alice")
        first = assert_session(resp)
        own = issued_cookie(resp)
        planted = COOKIE + "=" + "A" * len(own.split("=", 1)[1])
        jar = [planted, own] if order == 0 else [own, planted]
        assert bye(server, "; ".join(jar)).status == 404
        assert assert_session(session_get(server, "alice")) != first, order


def test_a_replayed_cookie_drops_nothing_after_the_logout_it_made(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE))
    captured = issued_cookie(session_get(server, "alice"))
    assert bye(server, captured).status == 404
    second = assert_session(session_get(server, "alice"))
    assert bye(server, captured).status == 404
    assert assert_session(session_get(server, "alice")) == second


def test_the_cookie_does_not_tell_the_customer_ids_length(module_httpd, dm):
    short, long = "al", "a" * 200
    server = module_httpd(portal_conf(dm, BYE), users=[short, long])
    lengths = {len(issued_cookie(session_get(server, user))) for user in (short, long)}
    assert len(lengths) == 1, lengths


def test_a_cookie_of_the_earlier_form_is_replaced_at_the_next_hand_out(module_httpd, dm):
    server = module_httpd(portal_conf(dm, BYE))
    resp = session_get(server, "alice", headers={"Cookie": OLD_COOKIE + "=" + "A" * 60})
    assert_session(resp)
    set_cookies = resp.headers.get_all("Set-Cookie") or ()
    assert any(c.startswith(OLD_COOKIE + "=;") and "Max-Age=0" in c for c in set_cookies), \
        set_cookies
    assert issued_cookie(resp)
