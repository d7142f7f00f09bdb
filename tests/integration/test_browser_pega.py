"""The chat as Pega's widget really behaves, in headless chromium on the demo
portal against the emulated widget (tools/dm-emulator/widget.js): a login
that changes while a session is being made (F12), a rotation of the secret
with a chat open, a chat that Pega ends on its own, frames, and the page a
logout leads to. Browser tests are slow: each starts one portal and one
browser, and checks as much as its set-up allows."""

import json
import os
import re
import time

import pytest
from selenium.webdriver.common.by import By

import pegadm_harness as harness
from pegadm_harness.browser import DEMO_DIR, DemoPortal, demo_private_data
from pegadm_harness.httpd import assert_quiet_start
from pegadm_harness.plugin import require_module
from test_browser_lifecycle import (RESUME_GRACE, events, portal_page, stored_chat,
                                    wait_event)

OLD = harness.WIDGET_SECRET
NEW = "the-rotated-secret-of-the-connection-0123456789"
RECORD = "pegadm-owner:" + harness.WIDGET_ID

# What the emulator's create waits in the F12 race: long enough for another
# tab to log out and log in on a busy machine, short of PegaDMTimeout.
SLOW_CREATE_MS = 8000
TIMEOUT = "PegaDMTimeout 10\n"

# A logout location that knows nobody (no login session, no authentication),
# as mod_auth_openidc's ?logout= and mod_auth_mellon's endpoint: it can only
# read the logout cookie. And a page that shows the portal in a frame.
EXTRA_CONF = """
<Location "/sso-logout">
    Require all granted
    Session Off
    PegaDMForget On
</Location>
IncludeOptional "${PEGADM_DEMO_STATE}/rotation.conf"
"""
FRAMING_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Framed</title></head>
<body><iframe id="inner" src="/" width="900" height="600"></iframe></body></html>
"""


class RotatingPortal(DemoPortal):
    """The demo portal, plus a cookie-only PegaDMForget location, a page
    that frames the portal, and a rotation.conf the test rewrites (with a
    PegaDMTimeout that lets the F12 race's create take seconds)."""

    def write_config(self):
        super().write_config()
        self.rotation_conf = os.path.join(self.root, "rotation.conf")
        harness.write_file(self.rotation_conf, TIMEOUT)
        harness.write_file(os.path.join(self.root, "web", "htdocs", "framed.html"),
                           FRAMING_PAGE, 0o644)
        wrapper = os.path.join(self.root, "portal.conf")
        harness.write_file(wrapper, 'Include "%s"\n%s' % (
            os.path.join(DEMO_DIR, "httpd.conf"), EXTRA_CONF))
        self.conf_path = wrapper

    def secrets(self, current, following):
        """PegaDMJWTSecretFile holds `current`; PegaDMJWTSecretNextFile
        `following` (None: no next secret); then a graceful restart."""
        harness.write_file(self.env["PEGADM_DEMO_SECRET_FILE"], current, 0o600)
        text = TIMEOUT
        if following is not None:
            path = harness.write_file(os.path.join(self.root, "jwt-secret-next"), following,
                                      0o600)
            text += 'PegaDMJWTSecretNextFile "%s"\n' % path
        harness.write_file(self.rotation_conf, text)
        harness.graceful_restart(self)


@pytest.fixture
def portal(workdir, plain_dm):
    require_module()
    server = RotatingPortal(workdir, plain_dm).start()
    assert_quiet_start(server)
    yield server
    server.stop()
    crashed = server.crashes()
    assert not crashed, "httpd children crashed:\n" + "\n".join(crashed)


def chat_resumes(chromium, base, dm, sid):
    """The next portal page brings the chat back, and ends nothing."""
    since = time.time()
    portal_page(chromium, base)
    wait_event(dm, "resume", sid, since)
    assert chromium.wait_for_chat()["session"] == sid
    assert events(dm, "end", since=since) == [], events(dm, since=since)


def shown(driver, element_id):
    """What the widget wrote in an element, shown or not (the panel may be
    closed: selenium's .text is then empty whatever it holds)."""
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
        element_id)


def created_for(dm, user, since=0.0):
    customer = demo_private_data(user)["customerId"]
    return [c["sessionId"] for c in dm.state()["creates"]
            if c["customerId"] == customer and c["time"] >= since]


def test_a_login_changed_while_the_chat_is_made_never_reaches_the_next_user(
        chromium, portal, plain_dm):
    """F12: tab A (alice) opens the chat while the service takes seconds
    per create; tab B logs out and logs bob in meanwhile. Whatever the
    module made for alice, bob's next page never resumes it."""
    chromium.log_in(portal.base, "alice")
    first = chromium.open_chat()["session"]
    # Pega ends that one, so that opening the chat again makes a session
    plain_dm.end_session(first, "agent")
    wait_event(plain_dm, "ended", first)
    tab_a = chromium.driver.current_window_handle
    plain_dm.set_mode("delay", applies_to="create", delay_ms=SLOW_CREATE_MS, count=1)
    started = time.time()
    chromium.element("pega-emu-launcher").click()
    chromium.driver.switch_to.new_window("tab")
    tab_b = chromium.driver.current_window_handle
    chromium.get(portal.base + "/logout")
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    chromium.log_in(portal.base, "bob")
    raced = time.time() - started
    # tab A's answer arrives: alice's session, made while the login changed
    chromium.driver.switch_to.window(tab_a)
    chromium.wait(lambda d: shown(d, "pega-emu-status") not in ("", "Connecting\u2026"),
                  "tab A's answer", timeout=3 * SLOW_CREATE_MS / 1000)
    [alices] = harness.wait_for(lambda: created_for(plain_dm, "alice", started), 5,
                                what="the create made for alice")
    assert raced < SLOW_CREATE_MS / 1000, "the logout and log-in took %.1f s" % raced
    tab_a_shows = shown(chromium.driver, "pega-emu-session")
    # bob's next page, in tab B
    chromium.driver.switch_to.window(tab_b)
    since = time.time()
    portal_page(chromium, portal.base)
    assert chromium.text("user") == "bob"
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", since=since) == []
    assert stored_chat(chromium) is None
    facts = chromium.open_chat()
    assert facts["session"] not in (alices, first)
    assert json.loads(facts["private-data"]) == demo_private_data("bob")
    # and tab A never showed it either: its page was alice's, the login bob's
    assert events(plain_dm, "start", alices) == [] and events(plain_dm, "resume", alices) == []
    assert tab_a_shows == ""


def test_an_open_chat_survives_a_full_rotation_and_logout_still_works(
        chromium, portal, plain_dm):
    chromium.log_in(portal.base, "alice")
    sid = chromium.open_chat()["session"]
    record = chromium.run("return localStorage.getItem(arguments[0])", RECORD)
    # 1. the next secret is configured
    portal.secrets(OLD, NEW)
    chat_resumes(chromium, portal.base, plain_dm, sid)
    # 2. Pega switches: a new customer's create is refused once, then signed anew
    plain_dm.set_secret(NEW)
    login = portal.request("POST", "/login", body="httpd_username=bob&httpd_password=bob",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    page = portal.request("GET", "/", headers={"Cookie": login.header("Set-Cookie").split(";")[0]})
    assert page.status == 200 and created_for(plain_dm, "bob"), page
    harness.wait_for(lambda: "PEGADM620" in portal.error_log(), 5, what="PEGADM620")
    chat_resumes(chromium, portal.base, plain_dm, sid)
    assert chromium.run("return localStorage.getItem(arguments[0])", RECORD) == record
    # 3. the next secret is promoted: the swap ends no chat
    portal.secrets(NEW, OLD)
    chat_resumes(chromium, portal.base, plain_dm, sid)
    # 4. the old secret is removed
    portal.secrets(NEW, None)
    chat_resumes(chromium, portal.base, plain_dm, sid)
    assert created_for(plain_dm, "alice") == [sid]
    # a logout where only the logout cookie tells who it is drops the session
    logout = time.time()
    chromium.get(portal.base + "/sso-logout")
    harness.wait_for(lambda: re.search(r"PEGADM507: .*'%s'" % demo_private_data(
        "alice")["customerId"], portal.error_log()), 5, what="the cookie's logout")
    # alice is still logged in to the portal: her next page ends the chat,
    # and opening it again makes a new session
    portal_page(chromium, portal.base)
    wait_event(plain_dm, "end", sid, logout)
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", since=logout) == []
    again = chromium.open_chat()["session"]
    assert again != sid and created_for(plain_dm, "alice") == [sid, again]


def test_a_chat_pega_ends_is_followed_by_a_new_session(chromium, portal, plain_dm):
    """Idle timeout: the widget forgets the chat; an eager page still
    exports the old session (the module cannot know), but opening the chat
    makes one new session, which the next eager page exports."""
    chromium.log_in(portal.base, "alice")
    old = chromium.open_chat()["session"]
    assert chromium.text("eager-session") == old
    plain_dm.end_session(old, "idle")
    wait_event(plain_dm, "ended", old)
    assert stored_chat(chromium) is None
    assert chromium.text("pega-emu-session") == ""
    portal_page(chromium, portal.base)
    assert chromium.text("eager-session") == old  # exported before the widget asked
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", old) == []
    creates = len(plain_dm.state()["creates"])
    facts = chromium.open_chat()
    new = facts["session"]
    assert new != old
    assert facts["customer"] == demo_private_data("alice")["customerId"]
    assert json.loads(facts["private-data"]) == demo_private_data("alice")
    assert len(plain_dm.state()["creates"]) == creates + 1
    portal_page(chromium, portal.base)
    assert chromium.text("eager-session") == new
    wait_event(plain_dm, "resume", new)
    assert len(plain_dm.state()["creates"]) == creates + 1


def test_in_a_frame_the_bootstrap_does_nothing(chromium, portal, plain_dm):
    chromium.log_in(portal.base, "alice")
    chromium.wait_for_widget()
    # the top page: the widget, told the page's language
    assert chromium.run("return window.PegaChatTags && window.PegaChatTags.lang") == "en"
    mark = len(portal.access_log().splitlines())
    chromium.get(portal.base + "/framed.html")
    frame = chromium.element("inner")
    chromium.driver.switch_to.frame(frame)
    chromium.wait(lambda d: d.find_elements(By.ID, "user"), "the portal page in the frame")
    chromium.wait(lambda d: d.execute_script("return document.readyState") == "complete",
                  "the framed page to load")
    time.sleep(RESUME_GRACE)
    assert not chromium.has("pega-emu-launcher")
    assert chromium.run("return [window.pegadmBootstrapped, window.PegaChatTags,"
                        " typeof (window.PegaUnifiedChatWidget || {}).onCreateSessionRequest]"
                        ) == [None, None, "undefined"]
    chromium.driver.switch_to.default_content()
    asked = [line for line in portal.access_log().splitlines()[mark:]
             if "/pegadm/session" in line]
    assert asked == [], asked


def test_the_page_a_logout_leads_to_ends_the_chat_there(chromium, portal, plain_dm):
    """docs/browser.md: with PegaDMForget on the logout URL (as the demo and
    every logout example have it), the page the logout leads to ends the
    chat itself, before it resumes, when it loads the bootstrap."""
    chromium.log_in(portal.base, "alice")
    sid = chromium.open_chat()["session"]
    logout = time.time()
    chromium.element("logout").click()  # a plain link
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    landing = chromium.driver.current_url
    assert "/login.shtml" in landing
    ended = wait_event(plain_dm, "end", sid, logout)
    assert [e["page"] for e in ended] == [landing], ended
    chromium.wait_for_widget()
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", since=logout) == []
    assert stored_chat(chromium) is None
    assert chromium.run("return localStorage.getItem(arguments[0])", RECORD) is None
    assert shown(chromium.driver, "pega-emu-session") == ""
    assert chromium.driver.current_url == landing
