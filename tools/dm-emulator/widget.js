/* Pega DM emulator: a stand-in for Pega's Web Messaging widget (widget.js),
 * as far as a chat with "Control chat session initialization" goes. It
 * renders a launcher and a small panel; opening a chat asks the page for a
 * session through PegaUnifiedChatWidget.onCreateSessionRequest(trigger),
 * then shows that session and the customer the service linked to it, and
 * calls onSessionInitialized(sessionId). triggerChat(code), toggleWidget()
 * and endChat() work as the page expects of the real widget. No
 * dependencies, no conversation: the point is the session hand-over. */
(function () {
  "use strict";

  var widget = (window.PegaUnifiedChatWidget = window.PegaUnifiedChatWidget || {});
  if (widget.emulated) {
    return; /* loaded twice */
  }
  widget.emulated = true;

  var script = document.currentScript || document.getElementById("pega-wm-chat");
  var service = new URL(script.src, location.href).origin;
  var ui = null;
  var chat = null; /* the open chat: {trigger} */

  var CSS =
    ".pega-emu{position:fixed;right:20px;bottom:20px;z-index:2147483000;" +
    "font:14px/1.4 system-ui,sans-serif;color:#1d2733}" +
    ".pega-emu-launcher{border:0;border-radius:24px;padding:12px 20px;" +
    "background:#0a6ebd;color:#fff;font:inherit;font-weight:600;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".pega-emu-panel{width:330px;margin-bottom:12px;background:#fff;border-radius:10px;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}" +
    ".pega-emu-panel header{display:flex;justify-content:space-between;align-items:center;" +
    "background:#0a6ebd;color:#fff;padding:10px 14px;font-weight:600}" +
    ".pega-emu-panel header button{border:0;background:none;color:#fff;font-size:18px;" +
    "cursor:pointer}" +
    ".pega-emu-body{padding:12px 14px}" +
    ".pega-emu-body dl{margin:8px 0;display:grid;grid-template-columns:auto 1fr;gap:4px 10px}" +
    ".pega-emu-body dt{color:#5a6673}" +
    ".pega-emu-body dd{margin:0;font-family:ui-monospace,monospace;font-size:12px;" +
    "word-break:break-all}" +
    ".pega-emu-status{margin:0;font-weight:600}" +
    ".pega-emu-error .pega-emu-status{color:#b3261e}" +
    ".pega-emu-note{margin:8px 0 0;color:#5a6673;font-size:12px}";

  function el(tag, id, className, text) {
    var e = document.createElement(tag);
    if (id) {
      e.id = id;
    }
    if (className) {
      e.className = className;
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  function fact(list, label, id) {
    list.appendChild(el("dt", null, null, label));
    return list.appendChild(el("dd", id, null, ""));
  }

  function build() {
    if (ui) {
      return ui;
    }
    var style = el("style");
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
    ui = { root: el("div", "pega-emu-widget", "pega-emu") };
    ui.panel = el("section", "pega-emu-panel", "pega-emu-panel");
    ui.panel.hidden = true;
    var header = el("header", null, null, "Customer service");
    var close = el("button", "pega-emu-close", null, "\u00d7");
    close.type = "button";
    close.title = "Minimise";
    close.addEventListener("click", function () { widget.toggleWidget(); });
    header.appendChild(close);
    var body = el("div", null, "pega-emu-body");
    ui.status = body.appendChild(el("p", "pega-emu-status", "pega-emu-status", ""));
    var facts = body.appendChild(el("dl"));
    ui.session = fact(facts, "Session", "pega-emu-session");
    ui.customer = fact(facts, "Customer", "pega-emu-customer");
    ui.privateData = fact(facts, "Private data", "pega-emu-private-data");
    ui.trigger = fact(facts, "Trigger", "pega-emu-trigger");
    body.appendChild(el("p", null, "pega-emu-note",
      "Emulated widget: Pega's would hold the conversation here."));
    ui.panel.appendChild(header);
    ui.panel.appendChild(body);
    ui.launcher = el("button", "pega-emu-launcher", "pega-emu-launcher", "Chat with us");
    ui.launcher.type = "button";
    ui.launcher.addEventListener("click", function () { widget.toggleWidget(); });
    ui.root.appendChild(ui.panel);
    ui.root.appendChild(ui.launcher);
    document.body.appendChild(ui.root);
    return ui;
  }

  function show(status, failed) {
    ui.status.textContent = status;
    ui.root.className = failed ? "pega-emu pega-emu-error" : "pega-emu";
  }

  function clearFacts() {
    ui.session.textContent = ui.customer.textContent = "";
    ui.privateData.textContent = ui.trigger.textContent = "";
  }

  /* The service's record of the session: its customer and private data. */
  function lookUp(sessionId) {
    return fetch(service + "/__emulator/session/" + encodeURIComponent(sessionId), {
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("the service does not know this session (" + response.status + ")");
      }
      return response.json();
    });
  }

  function start(trigger) {
    build();
    ui.panel.hidden = false;
    if (chat) {
      return; /* one chat at a time: this one is already open */
    }
    var attempt = (chat = { trigger: trigger });
    clearFacts();
    ui.trigger.textContent = trigger === undefined ? "none (opened by the customer)" : trigger;
    if (typeof widget.onCreateSessionRequest !== "function") {
      chat = null;
      show("The page set no onCreateSessionRequest: no session.", true);
      return;
    }
    show("Connecting\u2026", false);
    Promise.resolve()
      .then(function () { return widget.onCreateSessionRequest(trigger); })
      .then(function (sessionId) {
        if (typeof sessionId !== "string" || !sessionId) {
          throw new Error("onCreateSessionRequest gave no session ID");
        }
        return lookUp(sessionId);
      })
      .then(function (record) {
        if (chat !== attempt) {
          return; /* ended meanwhile */
        }
        ui.session.textContent = record.sessionId;
        ui.customer.textContent = record.customerId;
        ui.privateData.textContent = JSON.stringify(record.privateData);
        show("Connected: the agent knows you as " + record.customerId + ".", false);
        if (typeof widget.onSessionInitialized === "function") {
          widget.onSessionInitialized(record.sessionId);
        }
      })
      .catch(function (err) {
        if (chat === attempt) {
          chat = null;
          show("Could not start the chat: " + (err && err.message ? err.message : err), true);
        }
      });
  }

  widget.triggerChat = function (code) {
    start(code === undefined || code === null ? undefined : String(code));
  };

  widget.toggleWidget = function () {
    build();
    if (ui.panel.hidden) {
      start(undefined);
    } else {
      ui.panel.hidden = true;
    }
  };

  widget.endChat = function () {
    chat = null;
    if (ui) {
      ui.panel.hidden = true;
      clearFacts();
      show("", false);
    }
  };

  if (document.body) {
    build();
  } else {
    document.addEventListener("DOMContentLoaded", build);
  }
})();
