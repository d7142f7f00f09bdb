// src/js/bootstrap.js under node's test runner (node --test tests/js/), in
// a small fake browser: enough DOM, fetch, localStorage, the storage event
// and BroadcastChannel to run the script in one or several tabs of one
// origin, with a widget that resumes its chat a second after it loads
// unless endChat() was called first.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const SOURCE = fs.readFileSync(path.join(__dirname, "..", "..", "src", "js", "bootstrap.js"),
                               "utf8");
const CONFIG = {
  sessionEndpoint: "/pegadm/session",
  widgetScript: "https://widget.example/0b6c/widget.js",
  widgetId: "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11",
};
const RECORD = "pegadm-owner:" + CONFIG.widgetId;
const RESUME_MS = 1000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* What the tabs of one origin share: localStorage and the channels. */
function makeOrigin() {
  const origin = { items: new Map(), tabs: [], channels: [] };
  origin.storageFor = (tab) => ({
    getItem: (k) => (origin.items.has(k) ? origin.items.get(k) : null),
    setItem: (k, v) => origin.change(tab, k, String(v)),
    removeItem: (k) => origin.change(tab, k, null),
  });
  origin.change = (tab, key, value) => {
    const old = origin.items.has(key) ? origin.items.get(key) : null;
    if (value === null) {
      origin.items.delete(key);
    } else {
      origin.items.set(key, value);
    }
    for (const other of origin.tabs) {
      if (other !== tab) {
        setTimeout(() => other.dispatch("storage", { key, oldValue: old, newValue: value }), 0);
      }
    }
  };
  return origin;
}

/* One tab: a page of the origin, with the server answering `owner` for
 * ?owner (null: 401, nobody logged in) and sessions for POSTs. */
function makeTab(origin, options = {}) {
  const tab = { calls: [], events: [], listeners: {}, appended: [], owner: options.owner };
  tab.dispatch = (type, event) => (tab.listeners[type] || []).forEach((f) => f(event));
  const widget = options.widget || {};
  function element(tag) {
    const listeners = {};
    return {
      tagName: tag.toUpperCase(),
      addEventListener: (type, f) => (listeners[type] = (listeners[type] || []).concat(f)),
      fire: (type) => (listeners[type] || []).forEach((f) => f({})),
    };
  }
  /* the emulated widget.js: ready on load, resumes a stored chat after a second */
  function loadWidget(script) {
    setTimeout(() => {
      if (options.widgetFails) {
        script.fire("error");
        return;
      }
      let ended = false;
      const api = tab.window.PegaUnifiedChatWidget;
      api.endChat = () => {
        ended = true;
        tab.events.push("end");
      };
      setTimeout(() => {
        if (!ended && options.storedChat !== false) {
          tab.events.push("resume");
        }
      }, options.resumeMs || RESUME_MS);
      script.fire("load");
    }, 5);
  }
  const sink = {
    appendChild(e) {
      tab.appended.push(e);
      if (e.tagName === "SCRIPT") {
        loadWidget(e);
      }
      return e;
    },
  };
  const document = {
    createElement: element,
    getElementById: (id) => tab.appended.find((e) => e.id === id) || null,
    /* "tag#id" only: the page's own elements, then what the script added */
    querySelector: (selector) => {
      const [tag, id] = selector.split("#");
      return (options.page || []).concat(tab.appended)
        .find((e) => e.tagName === tag.toUpperCase() && e.id === id) || null;
    },
    head: sink,
    documentElement: sink,
  };
  let sessions = 0;
  tab.window = {
    PegaUnifiedChatWidget: widget,
    document,
    localStorage: origin.storageFor(tab),
    setTimeout,
    console,
    addEventListener: (type, f) => (tab.listeners[type] = (tab.listeners[type] || []).concat(f)),
    fetch: async (url, opts = {}) => {
      tab.calls.push({ url: String(url), opts });
      if (String(url).endsWith("owner")) {
        const owner = typeof tab.owner === "function" ? tab.owner() : tab.owner;
        return owner === null
          ? { ok: false, status: 401, json: async () => ({ error: "unauthenticated" }) }
          : { ok: true, status: 200, json: async () => ({ owner }) };
      }
      sessions += 1;
      return { ok: true, status: 200, json: async () => ({ sessionId: "SID-" + sessions }) };
    },
  };
  if (options.broadcast !== false) {
    tab.window.BroadcastChannel = class {
      constructor(name) {
        this.name = name;
        this.onmessage = null;
        origin.channels.push(this);
      }
      postMessage(data) {
        for (const c of origin.channels) {
          if (c !== this && c.name === this.name && c.onmessage) {
            setTimeout(() => c.onmessage({ data }), 0);
          }
        }
      }
    };
  }
  tab.window.window = tab.window;
  tab.context = vm.createContext(tab.window);
  tab.run = () => vm.runInContext(SOURCE + "(" + JSON.stringify(CONFIG) + ");", tab.context);
  origin.tabs.push(tab);
  return tab;
}

test("the user's own chat resumes", async () => {
  const origin = makeOrigin();
  origin.items.set(RECORD, "OWNER-ALICE");
  const tab = makeTab(origin, { owner: "OWNER-ALICE" });
  tab.run();
  await sleep(RESUME_MS + 100);
  assert.deepEqual(tab.events, ["resume"]);
  assert.equal(origin.items.get(RECORD), "OWNER-ALICE");
});

for (const [name, owner, record] of [
  ["another user logged in since", "OWNER-BOB", "OWNER-ALICE"],
  ["nobody is logged in", null, "OWNER-ALICE"],
  ["the chat began before log-in (no record)", "OWNER-ALICE", undefined],
]) {
  test("a chat is ended before it resumes when " + name, async () => {
    const origin = makeOrigin();
    if (record !== undefined) {
      origin.items.set(RECORD, record);
    }
    const tab = makeTab(origin, { owner });
    tab.run();
    await sleep(RESUME_MS + 100);
    assert.deepEqual(tab.events, ["end"]);
    assert.equal(origin.items.has(RECORD), false);
  });
}

test("the owner is asked for same-origin, with the login's cookies, never cached", async () => {
  const tab = makeTab(makeOrigin(), { owner: "O" });
  tab.run();
  await sleep(50);
  const call = tab.calls[0];
  assert.equal(call.url, "/pegadm/session?owner");
  assert.equal(call.opts.method, "GET");
  assert.equal(call.opts.credentials, "include");
  assert.equal(call.opts.cache, "no-store");
});

test("no session is handed over before the owner check, then its owner is kept",
     async () => {
  const origin = makeOrigin();
  origin.items.set(RECORD, "OWNER-ALICE");
  let owner = "OWNER-BOB";
  const tab = makeTab(origin, { owner: () => owner });
  tab.run();
  const sid = tab.window.PegaUnifiedChatWidget.onCreateSessionRequest("SPRING");
  owner = "OWNER-BOB-SID-1"; /* the server's answer once bob's session is cached */
  assert.equal(await sid, "SID-1");
  assert.deepEqual(tab.calls.map((c) => [c.url, c.opts.method]), [
    ["/pegadm/session?owner", "GET"],
    ["/pegadm/session", "POST"],
    ["/pegadm/session?owner", "GET"],
  ]);
  assert.deepEqual(tab.events, ["end"]); /* ended before the POST */
  assert.equal(JSON.parse(tab.calls[1].opts.body).proactiveTrigger, "SPRING");
  assert.equal(origin.items.get(RECORD), "OWNER-BOB-SID-1");
});

test("the widget script is loaded once and an existing widget object kept", async () => {
  const tab = makeTab(makeOrigin(), { owner: "O", widget: { keep: "me" } });
  tab.run();
  tab.run();
  await sleep(50);
  const scripts = tab.appended.filter((e) => e.tagName === "SCRIPT");
  assert.deepEqual(scripts.map((e) => [e.id, e.src]), [["pega-wm-chat", CONFIG.widgetScript]]);
  assert.equal(tab.window.PegaUnifiedChatWidget.keep, "me");
  assert.equal(typeof tab.window.PegaUnifiedChatWidget.onCreateSessionRequest, "function");
});

test("an element of the page with the widget script's id does not stop the widget", async () => {
  const div = { tagName: "DIV", id: "pega-wm-chat" };
  const tab = makeTab(makeOrigin(), { owner: "O", page: [div] });
  tab.window.document.getElementById = (id) => (id === div.id ? div : null);
  tab.run();
  await sleep(50);
  const scripts = tab.appended.filter((e) => e.tagName === "SCRIPT");
  assert.deepEqual(scripts.map((e) => [e.id, e.src]), [["pega-wm-chat", CONFIG.widgetScript]]);
});

test("a widget that fails to load still lets the page go on", async () => {
  const tab = makeTab(makeOrigin(), { owner: "O", widgetFails: true });
  tab.run();
  assert.equal(await tab.window.PegaUnifiedChatWidget.onCreateSessionRequest(), "SID-1");
});

for (const broadcast of [true, false]) {
  test("ending for a change of user ends the chat in the other tabs (" +
       (broadcast ? "BroadcastChannel" : "storage event") + ")", async () => {
    const origin = makeOrigin();
    origin.items.set(RECORD, "OWNER-ALICE");
    const alice = makeTab(origin, { owner: "OWNER-ALICE", broadcast, resumeMs: 10 });
    alice.run();
    await sleep(100);
    assert.deepEqual(alice.events, ["resume"]);
    const bob = makeTab(origin, { owner: "OWNER-BOB", broadcast });
    bob.run();
    const start = Date.now();
    while (!alice.events.includes("end") && Date.now() - start < 2000) {
      await sleep(10);
    }
    assert.deepEqual(alice.events, ["resume", "end"]);
    assert.ok(Date.now() - start < 2000);
    assert.deepEqual(bob.events, ["end"]);
  });
}

test("a page whose own chat matches tells no other tab anything", async () => {
  const origin = makeOrigin();
  origin.items.set(RECORD, "OWNER-ALICE");
  const first = makeTab(origin, { owner: "OWNER-ALICE", resumeMs: 10 });
  first.run();
  await sleep(50);
  const second = makeTab(origin, { owner: "OWNER-ALICE", resumeMs: 10 });
  second.run();
  await sleep(200);
  assert.deepEqual(first.events, ["resume"]);
  assert.deepEqual(second.events, ["resume"]);
});
