/* Pega DM emulator: a stand-in for Pega's Web Messaging widget (widget.js),
 * as far as a chat with "Control chat session initialization" goes. It
 * renders a launcher and a small panel; opening a chat asks the page for a
 * session through PegaUnifiedChatWidget.onCreateSessionRequest(trigger),
 * then shows that session and the customer the service linked to it, and
 * calls onSessionInitialized(sessionId). triggerChat(code), toggleWidget()
 * and endChat() work as the page expects of the real widget.
 *
 * It is as unforgiving as a real widget may be: it keeps its chat in
 * localStorage, across pages and tabs of the origin, and resumes it about a
 * second after a page loads, without asking the page, unless endChat() was
 * called first; it asks onCreateSessionRequest only when it has no chat
 * and the customer opens it; a chat it holds in one tab lives on there
 * until that tab calls endChat(), and a chat being started when endChat()
 * comes is started all the same once the page hands it a session.
 *
 * Pega may end a chat on its own (idle timeout, an agent's "End chat",
 * "End session": /__emulator/end-session): the widget learns it (it polls
 * the service while it shows a chat, and looks before it resumes one),
 * forgets the chat, and asks onCreateSessionRequest again when the
 * customer next opens it; a session it is handed that has already ended
 * is refused. Resumes, starts, ends and ends by the service are reported to
 * the emulator (POST /__emulator/widget-events) for tests to see. No
 * dependencies, no
 * conversation: the point is the session's life. */
(function () {
  "use strict";

  var widget = (window.PegaUnifiedChatWidget = window.PegaUnifiedChatWidget || {});
  if (widget.emulated) {
    return; /* loaded twice */
  }
  widget.emulated = true;

  var script = document.currentScript || document.getElementById("pega-wm-chat");
  var scriptUrl = new URL(script.src, location.href);
  var service = scriptUrl.origin;
  var widgetId = scriptUrl.pathname.split("/").slice(-2)[0];
  var STORED = "pega-emu-chat:" + widgetId;
  var RESUME_MS = 1000;
  var POLL_MS = 500; /* how often a shown chat asks whether the service ended it */
  var tabId = Math.random().toString(36).slice(2);
  var ui = null;
  var chat = null; /* the chat of this page: {trigger, sessionId} */
  var resumeTimer = null;

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

  function storedChat() {
    try {
      var value = JSON.parse(localStorage.getItem(STORED) || "null");
      return value && typeof value.sessionId === "string" ? value : null;
    } catch (e) {
      return null;
    }
  }

  function storeChat(value) {
    if (value) {
      localStorage.setItem(STORED, JSON.stringify(value));
    } else {
      localStorage.removeItem(STORED);
    }
  }

  /* Tells the emulator what happened, for tests; fire and forget. */
  function report(event, sessionId) {
    try {
      fetch(service + "/__emulator/widget-events", {
        method: "POST",
        mode: "no-cors",
        credentials: "omit",
        keepalive: true,
        body: JSON.stringify({ event: event, sessionId: sessionId || null,
                               page: location.href, tab: tabId, at: Date.now() })
      }).catch(function () {});
    } catch (e) { /* reporting never breaks the widget */ }
  }

  function showRecord(record, how) {
    ui.session.textContent = record.sessionId;
    ui.customer.textContent = record.customerId;
    ui.privateData.textContent = JSON.stringify(record.privateData);
    show(how + ": the agent knows you as " + record.customerId + ".", false);
  }

  /* The service ended the chat: forget it everywhere, as the widget would. */
  function endedByService(attempt, record) {
    if (chat !== attempt) {
      return;
    }
    chat = null;
    var stored = storedChat();
    if (stored && stored.sessionId === record.sessionId) {
      storeChat(null);
    }
    report("ended", record.sessionId);
    clearFacts();
    ui.panel.hidden = true;
    show("The chat has ended (" + record.ended + ").", false);
  }

  /* While a chat is shown, the service may end it (Pega's own ends). */
  setInterval(function () {
    var attempt = chat;
    if (!attempt || !attempt.sessionId || attempt.polling) {
      return;
    }
    attempt.polling = true;
    lookUp(attempt.sessionId).then(function (record) {
      attempt.polling = false;
      if (record.ended) {
        endedByService(attempt, record);
      }
    }, function () { attempt.polling = false; });
  }, POLL_MS);

  /* The stored chat comes back by itself, as the real widget's does. */
  function resume() {
    resumeTimer = null;
    var stored = storedChat();
    if (!stored || chat) {
      return;
    }
    var attempt = (chat = { trigger: stored.trigger, sessionId: stored.sessionId });
    build();
    ui.panel.hidden = false;
    clearFacts();
    ui.trigger.textContent = stored.trigger === undefined || stored.trigger === null
      ? "none (resumed)" : stored.trigger;
    report("resume", stored.sessionId);
    lookUp(stored.sessionId)
      .then(function (record) {
        if (record.ended) {
          endedByService(attempt, record);
        } else if (chat === attempt) {
          showRecord(record, "Resumed");
        }
      })
      .catch(function (err) {
        if (chat === attempt) {
          show("Could not resume the chat: " + (err && err.message ? err.message : err), true);
        }
      });
  }

  function start(trigger) {
    build();
    ui.panel.hidden = false;
    if (chat) {
      return; /* one chat at a time: this one is already open */
    }
    if (storedChat()) {
      if (resumeTimer) {
        clearTimeout(resumeTimer);
      }
      resume(); /* it has a chat: it shows that one, asking nobody */
      return;
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
        if (record.ended) {
          throw new Error("the service ended this session already (" + record.ended + ")");
        }
        if (chat !== attempt) {
          return; /* ended meanwhile */
        }
        attempt.sessionId = record.sessionId;
        storeChat({ sessionId: record.sessionId, trigger: trigger === undefined ? null : trigger });
        report("start", record.sessionId);
        showRecord(record, "Connected");
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
    var stored = storedChat();
    var sessionId = (chat && chat.sessionId) || (stored && stored.sessionId) || null;
    if (resumeTimer) {
      clearTimeout(resumeTimer);
      resumeTimer = null;
    }
    if (!chat || chat.sessionId) {
      chat = null;
    } /* else a start still waits for its session: it goes on, and keeps what it gets */
    storeChat(null);
    report("end", sessionId);
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
  if (storedChat()) {
    resumeTimer = setTimeout(resume, RESUME_MS);
  }
})();
