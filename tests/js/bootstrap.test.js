// src/js/bootstrap.js under node's test runner (node --test tests/js/), in
// a small fake browser: enough DOM, fetch, localStorage, the storage event
// and BroadcastChannel to run the script in one or several tabs of one
// origin, with a widget that resumes its chat a second after it loads
// unless endChat() was called first, and a server whose POST answers the
// owner of the login it was made for.
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
 * ?owner (null: 401, nobody logged in; with `previous` during a rotation)
 * and sessions for POSTs, with the owner at the time of the answer.
 * options.framed: the page is in a frame; options.lang: <html lang>. */
function makeTab(origin, options = {}) {
  const tab = { calls: [], events: [], listeners: {}, appended: [], owner: options.owner,
                previous: options.previous };
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
    documentElement: Object.assign(Object.create(sink), { lang: options.lang || "" }),
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
      const owner = typeof tab.owner === "function" ? tab.owner() : tab.owner;
      if (String(url).endsWith("owner")) {
        const answer = tab.previous ? { owner, previous: tab.previous } : { owner };
        return owner === null
          ? { ok: false, status: 401, json: async () => ({ error: "unauthenticated" }) }
          : { ok: true, status: 200, json: async () => answer };
      }
      if (owner === null) {
        return { ok: false, status: 401, json: async () => ({ error: "unauthenticated" }) };
      }
      sessions += 1;
      const answer = { sessionId: "SID-" + sessions, widgetId: CONFIG.widgetId, owner };
      return { ok: true, status: 200, json: async () => answer };
    },
  };
  if (options.pageTags !== undefined) {
    tab.window.PegaChatTags = options.pageTags;
  }
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
  tab.window.window = tab.window.self = tab.window;
  tab.window.top = options.framed ? { portal: "the page around the frame" } : tab.window;
  tab.context = vm.createContext(tab.window);
  const config = Object.assign({}, CONFIG, options.config || {});
  tab.run = () => vm.runInContext(SOURCE + "(" + JSON.stringify(config) + ");", tab.context);
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

test("no session is handed over before the owner check, then the answer's owner is kept",
     async () => {
  const origin = makeOrigin();
  origin.items.set(RECORD, "OWNER-ALICE");
  const tab = makeTab(origin, { owner: "OWNER-BOB" });
  tab.run();
  assert.equal(await tab.window.PegaUnifiedChatWidget.onCreateSessionRequest("SPRING"),
               "SID-1");
  /* the owner comes with the session: no later question */
  assert.deepEqual(tab.calls.map((c) => [c.url, c.opts.method]), [
    ["/pegadm/session?owner", "GET"],
    ["/pegadm/session", "POST"],
  ]);
  assert.deepEqual(tab.events, ["end"]); /* ended before the POST */
  assert.equal(JSON.parse(tab.calls[1].opts.body).proactiveTrigger, "SPRING");
  assert.equal(origin.items.get(RECORD), "OWNER-BOB");
});

test("a login changed while the session was made gets no chat (F12)", async () => {
  const origin = makeOrigin();
  let owner = "OWNER-ALICE";
  const alice = makeTab(origin, { owner: () => owner, storedChat: false });
  alice.run();
  await sleep(50);
  /* the POST leaves as alice's; another tab logs out and bob logs in before
   * the answer, which the server made for the login it then saw */
  const sid = alice.window.PegaUnifiedChatWidget.onCreateSessionRequest();
  owner = "OWNER-BOB";
  await assert.rejects(sid, /login changed/);
  assert.equal(origin.items.has(RECORD), false);
  /* at page load (nothing recorded yet), and again for the changed login */
  assert.deepEqual(alice.events, ["end", "end"]);
  /* bob's next page finds nothing recorded as his */
  const bob = makeTab(origin, { owner: "OWNER-BOB" });
  bob.run();
  await sleep(RESUME_MS + 100);
  assert.deepEqual(bob.events, ["end"]);
});

test("an answer without an owner is not recorded as anyone's", async () => {
  const origin = makeOrigin();
  const tab = makeTab(origin, { owner: "OWNER-ALICE", storedChat: false });
  const fetch = tab.window.fetch;
  tab.window.fetch = async (url, opts) => {
    const response = await fetch(url, opts);
    if (opts.method !== "POST") {
      return response;
    }
    const { sessionId } = await response.json();
    return { ok: true, status: 200, json: async () => ({ sessionId }) };
  };
  tab.run();
  await assert.rejects(tab.window.PegaUnifiedChatWidget.onCreateSessionRequest());
  assert.equal(origin.items.has(RECORD), false);
});

test("a secret rotation's swap keeps the chat and rewrites the record", async () => {
  const origin = makeOrigin();
  origin.items.set(RECORD, "OWNER-ALICE-OLD-KEY");
  const tab = makeTab(origin, { owner: "OWNER-ALICE-NEW-KEY", previous: "OWNER-ALICE-OLD-KEY" });
  tab.run();
  await sleep(RESUME_MS + 100);
  assert.deepEqual(tab.events, ["resume"]);
  assert.equal(origin.items.get(RECORD), "OWNER-ALICE-NEW-KEY");
});

test("a session answered under the other secret's key is the same login's", async () => {
  const origin = makeOrigin();
  let owner = "OWNER-ALICE-OLD-KEY";
  const tab = makeTab(origin, { owner: () => owner, previous: "OWNER-ALICE-NEW-KEY",
                                storedChat: false });
  tab.run();
  await sleep(50);
  const sid = tab.window.PegaUnifiedChatWidget.onCreateSessionRequest();
  owner = "OWNER-ALICE-NEW-KEY"; /* the swap's reload came in between */
  assert.equal(await sid, "SID-1");
  assert.equal(origin.items.get(RECORD), "OWNER-ALICE-NEW-KEY");
  assert.deepEqual(tab.events, ["end"]); /* no record at page load: nothing was handed here */
});

for (const [name, args, body] of [
  ["no arguments", [], {}],
  ["a trigger", ["SPRING"], { proactiveTrigger: "SPRING" }],
  ["an empty trigger", [""], { proactiveTrigger: "" }],
  ["a trigger and a second argument", ["SPRING", { more: 1 }], { proactiveTrigger: "SPRING" }],
  ["something else first", [{ code: "SPRING" }], {}],
  ["something else first, a string second", [undefined, "SPRING"], {}],
  ["a number", [42], {}],
]) {
  test("onCreateSessionRequest with " + name, async () => {
    const tab = makeTab(makeOrigin(), { owner: "O", storedChat: false });
    tab.run();
    const request = tab.window.PegaUnifiedChatWidget.onCreateSessionRequest;
    assert.equal(await request(...args), "SID-1");
    assert.deepEqual(JSON.parse(tab.calls.find((c) => c.opts.method === "POST").opts.body),
                     body);
  });
}

test("in a frame it does nothing", async () => {
  const tab = makeTab(makeOrigin(), { owner: "O", framed: true, lang: "de" });
  tab.run();
  await sleep(50);
  assert.deepEqual(tab.calls, []);
  assert.deepEqual(tab.appended, []);
  assert.equal(tab.window.PegaUnifiedChatWidget.onCreateSessionRequest, undefined);
  assert.equal(tab.window.PegaChatTags, undefined);
  assert.equal(tab.window.pegadmBootstrapped, undefined);
});

test("in a frame it works when the configuration allows it", async () => {
  const tab = makeTab(makeOrigin(), { owner: "O", framed: true,
                                      config: { allowInFrame: true } });
  tab.run();
  assert.equal(await tab.window.PegaUnifiedChatWidget.onCreateSessionRequest(), "SID-1");
  assert.equal(tab.appended.filter((e) => e.id === "pega-wm-chat").length, 1);
});

for (const [name, lang, pageTags, expected] of [
  ["<html lang> is the widget's language", "de", undefined, { lang: "de" }],
  ["a language the page set wins", "de", { lang: "fr" }, { lang: "fr" }],
  ["the page's other tags are kept", "de-CH", { topic: "loans" }, { topic: "loans", lang: "de-CH" }],
  ["an empty tag is no language", "de", { lang: "" }, { lang: "de" }],
  ["no <html lang>, no tag", "", undefined, undefined],
]) {
  test(name, async () => {
    const tab = makeTab(makeOrigin(), { owner: "O", lang, pageTags });
    tab.run();
    await sleep(50);
    assert.equal(tab.appended.filter((e) => e.id === "pega-wm-chat").length, 1);
    assert.deepEqual(tab.window.PegaChatTags === undefined ? undefined
                     : JSON.parse(JSON.stringify(tab.window.PegaChatTags)), expected);
  });
}

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
