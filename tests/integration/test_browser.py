"""The widget bootstrap in a real browser, on the demo portal (demo/ as
scripts/demo runs it): a customer who logged in opens the chat and is
already known to Pega; the next person at the same browser gets nothing of
the first one's; a foreign site that includes the bootstrap learns nothing
and changes nothing.

The browser loads widget.js from a plain-HTTP emulator on loopback
(plain_dm): chromium does not trust the test CA, and the module accepts
http:// for a loopback service.
"""

import json
import os
import re
import shutil
import time

from selenium.webdriver.common.by import By

import pegadm_harness as harness
from pegadm_harness.browser import ForeignSite, demo_private_data

# The screenshot of the demo portal lands under build/, so a test run leaves
# the tree as it was; PEGADM_UPDATE_DOCS=1 also copies it to docs/, where
# the README shows it.
SCREENSHOT = os.path.join(harness.REPO_ROOT, "build", "screenshots", "demo-portal.png")
DOCS_SCREENSHOT = os.path.join(harness.REPO_ROOT, "docs", "demo-portal.png")
ACCESS_LINE = re.compile(r'^\S+ (\S+) \[[^]]+\] "(\S+) (\S+) [^"]*" (\d{3}) ')


def access_log(portal):
    """(user, method, path, status) of every request the portal logged."""
    return [m.groups() for m in map(ACCESS_LINE.match, portal.access_log().splitlines()) if m]


def requests_to(portal, path):
    return [(user, method, status) for user, method, p, status in access_log(portal)
            if p == path]


def assert_pega_knows(dm, sid, user):
    """The emulator made `sid` for `user`'s customer ID (from the demo's
    customer database) and holds user's private data for exactly that
    session."""
    state = dm.state()
    private = demo_private_data(user)
    assert [c["customerId"] for c in state["creates"] if c["sessionId"] == sid] == [
        private["customerId"]]
    assert [p["data"] for p in state["private_data"] if p["sessionId"] == sid] == [private]
    assert state["sessions"][sid]["privateData"] == private
    return state


def session_json(chromium):
    """GET of the session endpoint from the current portal page, its cookies."""
    resp = chromium.fetch("/pegadm/session")
    assert resp["status"] == 200, resp
    return json.loads(resp["body"])


def test_a_logged_in_customer_opens_a_chat_pega_already_knows(chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    eager = chromium.text("eager-session")
    assert_pega_knows(plain_dm, eager, "alice")

    facts = chromium.open_chat()
    sid = facts["session"]
    assert facts["customer"] == demo_private_data("alice")["customerId"]
    assert json.loads(facts["private-data"]) == demo_private_data("alice")
    assert facts["trigger"].startswith("none")
    chromium.wait(lambda d: chromium.text("widget-session") == sid,
                  "onSessionInitialized to show the session in the page")

    # The widget's first POST got the session made for the eager page: one
    # session per log-in.
    assert sid == eager
    state = assert_pega_knows(plain_dm, sid, "alice")
    assert len(state["creates"]) == 1
    assert ("alice", "POST", "200") in requests_to(demo_portal, "/pegadm/session")
    # The module hands out exactly this session now, without creating another.
    assert session_json(chromium) == {"sessionId": sid, "widgetId": harness.WIDGET_ID}
    assert len(plain_dm.state()["creates"]) == 1
    assert harness.WIDGET_SECRET not in chromium.driver.page_source
    chromium.screenshot(SCREENSHOT)
    if os.environ.get("PEGADM_UPDATE_DOCS") == "1":
        shutil.copyfile(SCREENSHOT, DOCS_SCREENSHOT)


def test_the_next_user_at_the_same_browser_gets_nothing_of_the_first(
        chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    alice_sid = chromium.open_chat()["session"]
    # The logout is a plain link: no script of the page runs for it.
    chromium.element("logout").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    assert ("-", "GET", "/logout", "307") in [
        (u, m, p, s) for u, m, p, s in access_log(demo_portal)], access_log(demo_portal)
    assert not [line for line in access_log(demo_portal) if line[1] == "DELETE"]
    assert chromium.fetch("/pegadm/session")["status"] == 401
    harness.wait_for(lambda: re.search(r"PEGADM502: .*'%s'" % demo_private_data(
        "alice")["customerId"], demo_portal.error_log()), 5, what="PegaDMForget's drop")

    chromium.log_in(demo_portal.base, "bob")
    assert alice_sid not in chromium.driver.page_source
    chromium.wait_for_widget()
    chromium.element("proactive-chat").click()
    facts = chromium.wait_for_chat()
    bob_sid = facts["session"]
    assert bob_sid != alice_sid
    assert facts["customer"] == demo_private_data("bob")["customerId"]
    assert json.loads(facts["private-data"]) == demo_private_data("bob")
    assert facts["trigger"] == "SPRING-OFFER"
    assert_pega_knows(plain_dm, bob_sid, "bob")
    assert session_json(chromium)["sessionId"] == bob_sid
    assert alice_sid not in chromium.driver.page_source
    widget_text = chromium.element("pega-emu-widget").text
    assert "alice" not in widget_text
    assert demo_private_data("alice")["customerId"] not in widget_text
    harness.wait_for(lambda: re.search(r"PEGADM034: .*'SPRING-OFFER'", demo_portal.error_log()),
                     5, what="the proactive trigger in the error log")


ATTACKER_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Somewhere else</title></head>
<body><p>An unrelated site.</p>
<form id="csrf" method="post" action="{portal}/pegadm/session" enctype="text/plain">
<input name='{{"proactiveTrigger":"x' value='"}}'></form>
<script src="{portal}/pegadm/bootstrap.js"></script>
<script>
async function attempt(results, label, init) {{
  try {{
    const r = await fetch('{portal}/pegadm/session', init);
    results.push({{label, type: r.type, status: r.status,
                  body: r.type === 'opaque' ? '' : await r.text()}});
  }} catch (e) {{
    results.push({{label, error: String(e)}});
  }}
}}
window.attack = async function () {{
  const results = [];
  for (const method of ['GET', 'POST', 'DELETE']) {{
    await attempt(results, method, {{method, credentials: 'include'}});
    if (method !== 'DELETE') {{
      await attempt(results, method + ' no-cors',
                    {{method, credentials: 'include', mode: 'no-cors'}});
    }}
  }}
  try {{
    const sid = await PegaUnifiedChatWidget.onCreateSessionRequest('x');
    results.push({{label: 'hook', value: sid}});
  }} catch (e) {{
    results.push({{label: 'hook', error: String(e)}});
  }}
  results.push({{label: 'script', value: JSON.stringify(window.PegaUnifiedChatWidget)}});
  return results;
}};
</script></body></html>
"""


def test_a_foreign_site_learns_no_session_and_changes_nothing(chromium, demo_portal, plain_dm):
    chromium.log_in(demo_portal.base, "alice")
    alice_sid = chromium.open_chat()["session"]
    before = plain_dm.state()
    mark = len(access_log(demo_portal))

    # A page on another site (localhost is not the same site as 127.0.0.1),
    # in the same browser, with alice's cookie in the jar.
    with ForeignSite(ATTACKER_PAGE.format(portal=demo_portal.base)) as site:
        chromium.get(site.url)
        results = chromium.run_async(
            "var done = arguments[arguments.length - 1];"
            "attack().then(done, function (e) { done([{label: 'attack', error: String(e)}]); });")
        # A cross-site form POST is a top-level navigation: the browser may
        # send the cookie along, and then the module must refuse it.
        chromium.run("document.getElementById('csrf').submit();")
        chromium.wait(lambda d: d.current_url.endswith("/pegadm/session")
                      and d.execute_script("return document.readyState") == "complete",
                      "the answer to the form POST")
        answer = chromium.driver.find_element(By.TAG_NAME, "body").text

    assert results and all("sessionId" not in json.dumps(r) for r in results), results
    assert alice_sid not in json.dumps(results) and "sessionId" not in answer, answer
    # The bootstrap's hook posts to the including page's own origin, never the portal.
    assert ("POST", "/pegadm/session") in site.seen
    after = plain_dm.state()
    assert len(after["creates"]) == len(before["creates"])
    assert len(after["private_data"]) == len(before["private_data"])

    def foreign_requests():
        return [(user, method, status) for user, method, path, status
                in access_log(demo_portal)[mark:] if path == "/pegadm/session"]

    # two fetch POSTs (simple requests, sent) and the form POST
    foreign = harness.wait_for(
        lambda: [r for r in foreign_requests() if r[1] == "POST"][2:] and foreign_requests(),
        5, what="the foreign requests in the access log")
    for user, method, status in foreign:
        assert method == "GET" or status in ("401", "403"), foreign
        assert not (user == "alice" and method == "POST") or status == "403", foreign
    # Back home: alice's session is the one she had, unchanged.
    chromium.get(demo_portal.base + "/")
    assert session_json(chromium)["sessionId"] == alice_sid
    assert len(plain_dm.state()["creates"]) == len(before["creates"])


def test_the_emulator_shows_a_session_record_to_loopback_pages_only(plain_dm):
    emulator = harness.load_emulator_module()
    now = int(time.time())
    token = emulator.sign_jwt({"iss": harness.WIDGET_ID, "iat": now, "exp": now + 60},
                              harness.WIDGET_SECRET)
    created = plain_dm.call("POST", "/%s/create" % harness.WIDGET_ID, {"customerId": "carol"},
                            {"Authorization": "Bearer " + token,
                             "Content-Type": "application/json"})
    sid = created.json()["sessionId"]
    path = "/__emulator/session/" + sid

    resp = plain_dm.call("GET", path, headers={"Origin": "http://127.0.0.2:8080"})
    assert resp.status == 200
    assert resp.json() == {"sessionId": sid, "widgetId": harness.WIDGET_ID,
                           "customerId": "carol", "privateData": None, "ended": None}
    assert resp.header("Access-Control-Allow-Origin") == "http://127.0.0.2:8080"
    for origin in ("https://portal.example", "http://127.0.0.1.example", "null"):
        resp = plain_dm.call("GET", path, headers={"Origin": origin})
        assert resp.header("Access-Control-Allow-Origin") is None, origin
    assert plain_dm.call("GET", "/__emulator/session/" + sid[::-1]).status == 404


def test_the_cacheable_script_never_carries_a_login_cookie(demo_portal):
    """/pegadm/bootstrap.js is public and cacheable: a Set-Cookie with the
    portal's session on it could be served to someone else by a cache."""
    login = demo_portal.request("POST", "/login", body="httpd_username=alice&httpd_password=alice",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert login.status == 302, login
    cookie = login.header("Set-Cookie").split(";")[0]
    page = demo_portal.request("GET", "/", headers={"Cookie": cookie})
    assert page.status == 200 and b'id="user">alice<' in page.body
    script = demo_portal.request("GET", "/pegadm/bootstrap.js", headers={"Cookie": cookie})
    assert script.status == 200
    assert "public" in script.header("Cache-Control")
    assert script.header("Set-Cookie") is None
