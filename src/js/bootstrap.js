/* mod_pegadm: hands the Pega chat widget a session made by the server, and
 * makes sure the widget shows no chat that was not made for the user now
 * logged in to this page.
 *
 * The module serves this file followed by "(<configuration>);": it is one
 * function expression taking
 *   {sessionEndpoint, widgetScript, widgetId}.
 * It holds no per-user data: a page of another site that includes it learns
 * nothing (its requests go to that site's own origin).
 *
 * The owner check: the module answers GET {sessionEndpoint}?owner with an
 * opaque value, a keyed hash of (widget, customer, the customer's last
 * logout), for same-origin requests only, creating no session. When this
 * script hands the widget a session, it keeps that value in localStorage;
 * on every page it asks again before loading the widget, and if the two
 * differ (another user logged in since, nobody is logged in, the chat
 * began before log-in or was never handed out here) it ends the chat with
 * endChat() as soon as the widget is ready, before it can resume it, and
 * before any session is handed over. Other tabs of the origin are told
 * (BroadcastChannel, and the storage event of the removed value) and end
 * theirs. */
(function (config) {
  "use strict";

  if (window.pegadmBootstrapped) {
    return; /* included twice: one owner check, one hand-over per page */
  }
  window.pegadmBootstrapped = true;
  var widget = (window.PegaUnifiedChatWidget = window.PegaUnifiedChatWidget || {});
  var RECORD = "pegadm-owner:" + config.widgetId;
  var READY_POLL_MS = 50;
  var READY_WAIT_MS = 15000;
  var SAME_END_MS = 1000; /* one end, told twice (channel and storage), ends once */
  var channel = null;
  var ready = null;
  var endedAt = 0;

  function readRecord() {
    try {
      return window.localStorage.getItem(RECORD);
    } catch (e) {
      return null; /* storage refused: nothing is known to be the user's */
    }
  }

  function writeRecord(value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(RECORD);
      } else {
        window.localStorage.setItem(RECORD, value);
      }
    } catch (e) {
      /* the next page then finds no record and ends the chat: safe */
    }
  }

  /* The owner of the login now, or null: nobody logged in, or no answer. */
  function currentOwner() {
    var url = config.sessionEndpoint + (config.sessionEndpoint.indexOf("?") < 0 ? "?" : "&") +
      "owner";
    return fetch(url, {
      method: "GET",
      credentials: "include",
      cache: "no-store",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      return data && typeof data.owner === "string" && data.owner ? data.owner : null;
    }, function () {
      return null;
    });
  }

  /* Loads the widget once; resolves when its endChat() can be called. */
  function widgetReady() {
    if (ready) {
      return ready;
    }
    ready = new Promise(function (resolve) {
      var waited = 0;
      function poll() {
        if (typeof widget.endChat === "function" || waited >= READY_WAIT_MS) {
          resolve();
          return;
        }
        waited += READY_POLL_MS;
        setTimeout(poll, READY_POLL_MS);
      }
      /* the widget's script, not any element a page gave that id */
      if (!document.querySelector("script#pega-wm-chat")) {
        var script = document.createElement("script");
        script.id = "pega-wm-chat";
        script.async = true;
        script.src = config.widgetScript;
        script.addEventListener("load", poll);
        script.addEventListener("error", function () { resolve(); });
        (document.head || document.documentElement).appendChild(script);
      } else {
        poll();
      }
    });
    return ready;
  }

  function endChat() {
    endedAt = Date.now();
    if (typeof widget.endChat === "function") {
      widget.endChat();
    }
  }

  function endEverywhere(hadRecord) {
    endChat();
    writeRecord(null);
    if (hadRecord && channel) {
      channel.postMessage({ type: "ended" });
    }
  }

  /* Another tab ended the chat for a logout or a change of user. */
  function endedElsewhere() {
    widgetReady().then(function () {
      if (Date.now() - endedAt >= SAME_END_MS) {
        endChat();
      }
    });
  }

  if (typeof BroadcastChannel === "function") {
    channel = new BroadcastChannel("pegadm:" + config.widgetId);
    channel.onmessage = function (event) {
      if (event.data && event.data.type === "ended") {
        endedElsewhere();
      }
    };
  }
  window.addEventListener("storage", function (event) {
    if (event.key === RECORD && event.oldValue !== null && event.newValue === null) {
      endedElsewhere();
    }
  });

  /* Once per page, before the widget loads: a chat it may resume stays
   * only if it is the one handed out here to the user now logged in. */
  var checked = currentOwner().then(function (owner) {
    var record = readRecord();
    if (owner !== null && record === owner) {
      return widgetReady();
    }
    return widgetReady().then(function () {
      endEverywhere(record !== null);
    });
  });

  widget.onCreateSessionRequest = function (proactiveTrigger) {
    var body = {};
    if (proactiveTrigger !== undefined && proactiveTrigger !== null) {
      body.proactiveTrigger = String(proactiveTrigger);
    }
    return checked.then(function () {
      return fetch(config.sessionEndpoint, {
        method: "POST",
        credentials: "include",
        cache: "no-store",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body)
      });
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("mod_pegadm: session endpoint answered " + response.status);
      }
      return response.json();
    }).then(function (data) {
      if (!data || typeof data.sessionId !== "string") {
        throw new Error("mod_pegadm: no sessionId in the answer");
      }
      /* what the next page compares with: the owner of this hand-over */
      return currentOwner().then(function (owner) {
        writeRecord(owner);
        return data.sessionId;
      });
    });
  };
})
