"""The chat follows the portal login, in a real browser, on the demo portal:
the emulated widget keeps its chat in localStorage and resumes it a second
after a page loads unless endChat() comes first (tools/dm-emulator/widget.js),
and reports what it did to the emulator. The bootstrap's owner check must
end every chat that is not the logged-in user's before it resumes."""

import json
import time
import urllib.parse

from selenium.webdriver.common.by import By

import pegadm_harness as harness
from pegadm_harness.browser import ForeignSite, demo_private_data

STORED_CHAT = "pega-emu-chat:" + harness.WIDGET_ID
RESUME_GRACE = 2.5  # the widget resumes about a second after the page loads


def events(dm, kind=None, sid=None, since=0.0):
    return [e for e in dm.state()["widget_events"]
            if (kind is None or e["event"] == kind) and (sid is None or e["sessionId"] == sid)
            and e["time"] >= since]


def wait_event(dm, kind, sid=None, since=0.0, timeout=5.0):
    return harness.wait_for(lambda: events(dm, kind, sid, since), timeout,
                            what="a widget %r event for %s" % (kind, sid))


def stored_chat(chromium):
    value = chromium.run("return localStorage.getItem(arguments[0])", STORED_CHAT)
    return json.loads(value) if value else None


def portal_page(chromium, base):
    chromium.get(base + "/")
    chromium.wait(lambda d: d.find_elements(By.ID, "user"), "a portal page")
    chromium.wait_for_widget()


def fetch_form(chromium, path, fields):
    """A form POST from the current page without leaving it (no page of the
    portal, and so no bootstrap, runs in between)."""
    return chromium.run_async(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: 'include', redirect: 'manual',"
        "  headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: arguments[1]})"
        "  .then(function (r) { done(r.status); }, function (e) { done(String(e)); });",
        path, urllib.parse.urlencode(fields))


def test_alices_chat_resumes_on_her_next_page(chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    sid = chromium.open_chat()["session"]
    assert stored_chat(chromium)["sessionId"] == sid
    since = time.time()
    portal_page(chromium, demo_portal.base)
    wait_event(plain_dm, "resume", sid, since)
    facts = chromium.wait_for_chat()
    assert facts["session"] == sid
    assert facts["customer"] == demo_private_data("alice")["customerId"]
    assert events(plain_dm, "end", since=since) == []
    assert len(plain_dm.state()["creates"]) == 1


def test_after_a_plain_logout_bob_never_sees_alices_chat(chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    alice_sid = chromium.open_chat()["session"]
    logout = time.time()
    chromium.element("logout").click()  # a plain link
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    chromium.log_in(demo_portal.base, "bob")
    chromium.wait_for_widget()
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", alice_sid, since=logout) == []
    assert events(plain_dm, "end", alice_sid, since=logout)
    assert stored_chat(chromium) is None
    assert chromium.text("pega-emu-session") == ""
    facts = chromium.open_chat()
    assert facts["session"] != alice_sid
    assert facts["customer"] == demo_private_data("bob")["customerId"]
    assert json.loads(facts["private-data"]) == demo_private_data("bob")
    assert [c["customerId"] for c in plain_dm.state()["creates"]
            if c["sessionId"] == facts["session"]] == [demo_private_data("bob")["customerId"]]


def test_bobs_page_ends_alices_chat_before_it_resumes(chromium, demo_portal, plain_dm):
    """No page of the portal runs between alice's logout and bob's log-in:
    bob's first page itself must end alice's chat, before it comes back."""
    chromium.log_in(demo_portal.base, "alice")
    alice_sid = chromium.open_chat()["session"]
    assert fetch_form(chromium, "/logout", {}) in (0, 307)  # an opaque redirect reads 0
    assert fetch_form(chromium, "/login", {"httpd_username": "bob",
                                            "httpd_password": "bob"}) in (0, 302)
    since = time.time()
    portal_page(chromium, demo_portal.base)
    assert chromium.text("user") == "bob"
    wait_event(plain_dm, "end", alice_sid, since)
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", since=since) == []
    facts = chromium.open_chat()
    assert facts["session"] != alice_sid
    assert json.loads(facts["private-data"]) == demo_private_data("bob")


def anonymous_session(dm):
    """A session made without the module, as a widget would make one before
    log-in: its bearer is whoever began the chat."""
    emulator = harness.load_emulator_module()
    now = int(time.time())
    token = emulator.sign_jwt({"iss": harness.WIDGET_ID, "iat": now, "exp": now + 60},
                              harness.WIDGET_SECRET)
    resp = dm.call("POST", "/%s/create" % harness.WIDGET_ID, {"customerId": "anonymous"},
                   {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    assert resp.status == 200, resp
    return resp.json()["sessionId"]


def test_a_chat_begun_before_log_in_never_resumes_in_the_portal(chromium, demo_portal,
                                                                plain_dm):
    anon = anonymous_session(plain_dm)
    chromium.get(demo_portal.base + "/")
    chromium.wait(lambda d: d.find_elements(By.ID, "username"), "the login form")
    chromium.wait_for_widget()  # the login page's own check is over
    chromium.run("localStorage.setItem(arguments[0], JSON.stringify({sessionId: arguments[1]}))",
                 STORED_CHAT, anon)
    since = time.time()
    chromium.element("username").send_keys("alice")
    chromium.element("password").send_keys("alice")
    chromium.element("sign-in").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "user"), "the portal page")
    wait_event(plain_dm, "end", anon, since)
    time.sleep(RESUME_GRACE)
    assert events(plain_dm, "resume", anon) == []
    facts = chromium.open_chat()
    assert facts["session"] != anon
    # never promoted: the module sent nothing to the pre-login session
    state = plain_dm.state()
    assert [p for p in state["private_data"] if p["sessionId"] == anon] == []
    assert state["sessions"][anon]["privateData"] is None


def test_logout_in_one_tab_ends_the_chat_in_the_other_within_2_seconds(
        chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    sid = chromium.open_chat()["session"]
    first = chromium.driver.current_window_handle
    chromium.driver.switch_to.new_window("tab")
    since = time.time()
    portal_page(chromium, demo_portal.base)
    wait_event(plain_dm, "resume", sid, since)
    logout = time.time()
    chromium.element("logout").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    # the logged-out page ends the chat; the first tab, still on alice's
    # page, is told and ends its own within 2 seconds
    # (the two reports may reach the emulator in either order)
    def ends_on(page):
        return lambda: [e for e in events(plain_dm, "end", sid, logout) if page(e["page"])]
    here = harness.wait_for(ends_on(lambda page: "/login.shtml" in page), 5.0,
                            what="the logged-out page's end")[0]
    there = harness.wait_for(ends_on(lambda page: page == demo_portal.base + "/"), 5.0,
                             what="the first tab's end")[0]
    assert there["tab"] != here["tab"]
    # by the browser's clock (the reports themselves may queue on a busy machine)
    assert there["at"] - here["at"] < 2000, (here, there)
    chromium.driver.switch_to.window(first)
    assert chromium.text("pega-emu-session") == ""
    assert events(plain_dm, "resume", since=logout) == []


ATTACKER_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Somewhere else</title></head>
<body><p>An unrelated site.</p>
<script src="{portal}/pegadm/bootstrap.js"></script>
<script>
window.learn = async function () {{
  const results = [];
  for (const mode of ['cors', 'no-cors']) {{
    try {{
      const r = await fetch('{portal}/pegadm/session?owner', {{credentials: 'include', mode}});
      results.push({{mode, type: r.type, status: r.status, body: await r.text()}});
    }} catch (e) {{
      results.push({{mode, error: String(e)}});
    }}
  }}
  return results;
}};
</script></body></html>
"""


def test_a_page_of_another_origin_learns_no_owner_and_changes_nothing(
        chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    sid = chromium.open_chat()["session"]
    record = chromium.run("return localStorage.getItem(arguments[0])",
                          "pegadm-owner:" + harness.WIDGET_ID)
    assert record
    since = time.time()
    mark = len(demo_portal.access_log().splitlines())
    with ForeignSite(ATTACKER_PAGE.format(portal=demo_portal.base)) as site:
        chromium.get(site.url)
        results = chromium.run_async(
            "var done = arguments[arguments.length - 1];"
            "learn().then(done, function (e) { done([{error: String(e)}]); });")
    assert record not in json.dumps(results), results
    assert all("owner" not in r.get("body", "") for r in results), results
    # the portal answered the foreign requests with no owner (the browser
    # keeps the login cookie from cross-site fetches; the module refuses
    # cross-site requests that carry it: test_owner.py)
    def foreign_answers():
        found = [line.split('" ')[1].split()[0] for line in
                 demo_portal.access_log().splitlines()[mark:] if "/pegadm/session?owner" in line]
        return found if len(found) >= 2 else None
    answers = harness.wait_for(foreign_answers, 5, what="the foreign requests in the log")
    assert set(answers) <= {"401", "403"}, answers
    # and nothing changed: alice's chat comes back on her next page
    portal_page(chromium, demo_portal.base)
    wait_event(plain_dm, "resume", sid, since)
    assert events(plain_dm, "end", sid, since) == []
    assert chromium.run("return localStorage.getItem(arguments[0])",
                        "pegadm-owner:" + harness.WIDGET_ID) == record
    assert len(plain_dm.state()["creates"]) == 1
