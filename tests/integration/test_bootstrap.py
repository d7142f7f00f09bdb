"""The pegadm-bootstrap handler: a public, per-user-free script."""

import json
import os
import shutil
import subprocess


import pegadm_harness as harness
from pegadm_harness import BOOTSTRAP_PATH, WIDGET_ID, assert_session, portal_conf, session_get


def widget_url_in(body, url):
    """The URL may appear raw or with JSON-escaped slashes; both are the same JS."""
    text = body.decode("utf-8")
    return url in text or url.replace("/", "\\/") in text


def get_bootstrap(server, user=None):
    resp = server.request("GET", BOOTSTRAP_PATH, user=user)
    assert resp.status == 200, resp
    assert (resp.header("Content-Type") or "").startswith("application/javascript"), resp
    return resp.body


def test_bootstrap_loads_the_widget_and_hooks_session_requests(module_httpd, dm):
    server = module_httpd(portal_conf(dm))
    body = get_bootstrap(server)
    assert widget_url_in(body, "%s/%s/widget.js" % (dm.url, WIDGET_ID)), body
    assert b"/pegadm/session" in body
    assert b"onCreateSessionRequest" in body
    assert b"pega-wm-chat" in body
    assert harness.WIDGET_SECRET.encode() not in body
    assert dm.state()["creates"] == [], "the bootstrap must not create sessions"


def test_bootstrap_holds_no_per_user_data(module_httpd, dm):
    server = module_httpd(portal_conf(
        dm, harness.location("/private/bootstrap.js", "SetHandler pegadm-bootstrap")))
    sid = assert_session(session_get(server, "alice"))
    anonymous = get_bootstrap(server)
    as_alice = server.request("GET", "/private/bootstrap.js", user="alice")
    assert as_alice.status == 200
    as_bob = server.request("GET", "/private/bootstrap.js", user="bob")
    assert anonymous == as_alice.body == as_bob.body
    assert sid.encode() not in anonymous
    assert b"alice" not in as_alice.body


def test_session_endpoint_path_is_configurable(module_httpd, dm):
    server = module_httpd(portal_conf(dm, server_extra=["PegaDMSessionEndpoint /custom/path"]))
    body = get_bootstrap(server)
    assert b"/custom/path" in body
    assert b"/pegadm/session" not in body


def configuration(body):
    """The object the script is called with: the text after its last "("."""
    text = body.decode("utf-8").rstrip()
    assert text.endswith(");"), text[-80:]
    return json.loads(text[text.rindex("({") + 1:-2])


def test_frames_are_off_unless_the_scope_allows_them(module_httpd, dm):
    server = module_httpd(portal_conf(dm, harness.location(
        "/framed/bootstrap.js", "SetHandler pegadm-bootstrap", "PegaDMAllowInFrame On",
        auth=False)))
    assert configuration(get_bootstrap(server))["allowInFrame"] is False
    framed = server.request("GET", "/framed/bootstrap.js")
    assert framed.status == 200, framed
    assert configuration(framed.body)["allowInFrame"] is True
    assert b"window.self !== window.top" in framed.body


def test_widget_url_follows_the_service_url(module_httpd, dm):
    service = "https://widget.use1.chat.pega.digital"
    server = module_httpd(portal_conf(None, service_url=service),
                          startup_warnings=["PEGADM630"])
    body = get_bootstrap(server)
    assert widget_url_in(body, "%s/%s/widget.js" % (service, WIDGET_ID)), body


# A minimal browser for node: enough DOM and fetch to run the script and
# observe what it does.
FAKE_BROWSER = r"""
const vm = require('vm');
const src = require('fs').readFileSync(process.argv[2], 'utf8');
const appended = [], calls = [];
function element(tag) {
  return { tagName: tag.toUpperCase(), attributes: {}, listeners: {},
           setAttribute(k, v) { this.attributes[k] = String(v); this[k] = String(v); },
           getAttribute(k) { return k in this.attributes ? this.attributes[k] : null; },
           addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); } };
}
// a script "loads" right away: the widget's API appears, then the load event
function loaded(e) {
  if (e.tagName === 'SCRIPT') {
    setTimeout(() => { window.PegaUnifiedChatWidget.endChat = () => calls.push({ url: 'endChat' });
                       (e.listeners.load || []).forEach(f => f({})); }, 1);
  }
  return e;
}
const sink = { appendChild(e) { appended.push(e); return loaded(e); },
               insertBefore(e) { appended.push(e); return loaded(e); } };
const document = {
  readyState: 'complete', currentScript: null,
  createElement: element,
  getElementById(id) { return appended.find(e => e.id === id) || null; },
  querySelector(sel) {
    const m = sel.match(/#([\w-]+)|\[id=["']?([\w-]+)/);
    return m ? this.getElementById(m[1] || m[2]) : null;
  },
  getElementsByTagName(t) {
    return t === 'script' ? appended.filter(e => e.tagName === 'SCRIPT') : [sink];
  },
  head: sink, body: sink, documentElement: sink,
  addEventListener() {},
};
const window = {
  PegaUnifiedChatWidget: { keep: 'me' }, document,
  location: { origin: 'http://127.0.0.1:8080', protocol: 'http:', host: '127.0.0.1:8080',
              href: 'http://127.0.0.1:8080/portal' },
  localStorage: { items: {}, getItem(k) { return k in this.items ? this.items[k] : null; },
                  setItem(k, v) { this.items[k] = String(v); },
                  removeItem(k) { delete this.items[k]; } },
  setTimeout, addEventListener() {},
  fetch: async (url, opts) => {
    calls.push({ url: String(url), opts: opts || {} });
    const answer = String(url).endsWith('?owner') ? { owner: 'OWNER' }
                                                  : { sessionId: 'SID-FROM-SERVER', widgetId: 'w',
                                                      owner: 'OWNER' };
    return { ok: true, status: 200, json: async () => answer,
             text: async () => JSON.stringify(answer) };
  },
  console,
};
window.window = window;
window.self = window;
window.top = window;
const context = vm.createContext(window);
vm.runInContext(src, context);
vm.runInContext(src, context);
(async () => {
  const w = context.PegaUnifiedChatWidget;
  const sid = await w.onCreateSessionRequest('trigger-42');
  console.log(JSON.stringify({
    keep: w.keep, sid,
    calls: calls.map(c => ({ url: c.url, method: (c.opts || {}).method,
                             credentials: (c.opts || {}).credentials,
                             body: String((c.opts || {}).body) })),
    stored: window.localStorage.items,
    scripts: appended.filter(e => e.tagName === 'SCRIPT').map(e => ({ id: e.id, src: e.src })),
  }));
})().catch(e => { console.error(String(e && e.stack || e)); process.exit(1); });
"""


def test_bootstrap_behaves_in_a_browser_like_runtime(module_httpd, dm, workdir):
    assert shutil.which("node"), "node is missing: install Debian's nodejs package"
    server = module_httpd(portal_conf(dm))
    script = os.path.join(workdir, "bootstrap-under-test.js")
    runner = os.path.join(workdir, "fake-browser.js")
    harness.write_file(script, get_bootstrap(server))
    harness.write_file(runner, FAKE_BROWSER)
    proc = subprocess.run(["node", runner, script], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    seen = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert seen["keep"] == "me", "an existing PegaUnifiedChatWidget object was replaced"
    assert seen["sid"] == "SID-FROM-SERVER"
    # the owner check (no chat of this user is known: it ends the chat),
    # then the session, whose answer says its owner
    assert [c["url"] for c in seen["calls"]] == [
        "/pegadm/session?owner", "endChat", "/pegadm/session"], seen
    assert seen["stored"] == {"pegadm-owner:" + WIDGET_ID: "OWNER"}
    call = seen["calls"][2]
    assert call["url"] in ("/pegadm/session", "http://127.0.0.1:8080/pegadm/session"), call
    assert call["method"] == "POST"
    assert call["credentials"] in ("same-origin", "include")
    assert "trigger-42" in call["body"]
    assert seen["scripts"] == [
        {"id": "pega-wm-chat", "src": "%s/%s/widget.js" % (dm.url, WIDGET_ID)}], seen
