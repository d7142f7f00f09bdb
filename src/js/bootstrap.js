/* mod_pegadm: hands the Pega chat widget a session made by the server, and
 * makes sure the widget shows no chat that was not made for the user now
 * logged in to this page.
 *
 * The module serves this file followed by "(<configuration>);": it is one
 * function expression taking
 *   {sessionEndpoint, widgetScript, widgetId, allowInFrame}.
 * It holds no per-user data: a page of another site that includes it learns
 * nothing (its requests go to that site's own origin).
 *
 * The owner check: the module answers GET {sessionEndpoint}?owner with an
 * opaque value, a keyed hash of (widget, customer, the customer's last
 * logout), for same-origin requests only, creating no session; while a
 * secret rotation is under way it adds "previous", the same login's value
 * under the other secret's key. The POST that makes a session answers the
 * owner of the customer it was made for, and this script keeps that value
 * in localStorage (never one asked for later: another tab may have changed
 * the login meanwhile); if it is not the owner this page was loaded for,
 * the chat is ended instead. On every page it asks again before loading
 * the widget, and if the two differ (another user logged in since, nobody
 * is logged in, the chat began before log-in or was never handed out here)
 * it ends the chat with endChat() as soon as the widget is ready, before it
 * can resume it, and before any session is handed over. Other tabs of the
 * origin are told (BroadcastChannel, and the storage event of the removed
 * value) and end theirs.
 *
 * Like Pega's own sample, it starts nothing inside a frame unless the
 * configuration allows it (PegaDMAllowInFrame), and it tells the widget the
 * page's language (<html lang>) unless the page set PegaChatTags.lang. */
(function (config) {
  "use strict";

  if (window.self !== window.top && config.allowInFrame !== true) {
    return; /* in a frame: the page around it has the chat, if any */
  }
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

  /* Whether value (a record, or the owner of an answer) names the login
   * whose owner is owner ({owner, previous}, or null: nobody). */
  function ownedBy(owner, value) {
    return owner !== null && typeof value === "string" &&
      (value === owner.owner || value === owner.previous);
  }

  /* The widget's language is its header drop-down's, then PegaChatTags.lang,
   * then the browser's: a page in another language says so in <html lang>. */
  function pageLanguage() {
    var tags = window.PegaChatTags;
    var lang = document.documentElement && document.documentElement.lang;
    if (typeof lang !== "string" || !lang.trim()) {
      return;
    }
    if (tags === undefined || tags === null) {
      tags = window.PegaChatTags = {};
    }
    if (typeof tags === "object" && (typeof tags.lang !== "string" || !tags.lang)) {
      tags.lang = lang.trim();
    }
  }

  /* The owner of the login now ({owner, previous}), or null: nobody logged
   * in, or no answer. */
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
      if (!data || typeof data.owner !== "string" || !data.owner) {
        return null;
      }
      return { owner: data.owner,
               previous: typeof data.previous === "string" ? data.previous : null };
    }, function () {
      return null;
    });
  }

  /* Loads the widget once; resolves when its endChat() can be called. */
  function widgetReady() {
    pageLanguage();
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
    if (ownedBy(owner, record)) {
      if (record !== owner.owner) {
        writeRecord(owner.owner); /* a rotation: the same login, the new key's value */
      }
      return widgetReady().then(function () { return owner; });
    }
    return widgetReady().then(function () {
      endEverywhere(record !== null);
      return owner;
    });
  });

  /* Pega documents no arguments; samples pass none, a proactive trigger,
   * or two: only a string first one is a trigger, the rest is ignored. */
  widget.onCreateSessionRequest = function (proactiveTrigger) {
    var body = {};
    var pageOwner = null;
    if (typeof proactiveTrigger === "string") {
      body.proactiveTrigger = proactiveTrigger;
    }
    return checked.then(function (owner) {
      pageOwner = owner;
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
      /* what the next page compares with: the owner the module made this
       * session for; a login changed since this page loaded (another tab
       * logged out, another user in) gets no chat here */
      if (!ownedBy(pageOwner, data.owner)) {
        endEverywhere(readRecord() !== null);
        throw new Error("mod_pegadm: the login changed since this page loaded");
      }
      writeRecord(data.owner);
      return data.sessionId;
    });
  };
})
