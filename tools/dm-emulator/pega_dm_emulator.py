#!/usr/bin/env python3
"""A stand-in for Pega Digital Messaging's session service, for tests.

It speaks the two server-to-server calls mod_pegadm makes (see
PEGA-DM-API.md): `POST /{widget-id}/create` and `POST /private-data`, and
checks what it receives more strictly than needed, so that a module that
mints a sloppy token or builds a sloppy body fails the tests instead of
failing in production. The JWT checks are written here from scratch (hmac,
hashlib, base64), independent of the module's code.

A control API under /__emulator/ lets tests read what arrived, reset the
state, inject faults (errors, delays, garbage answers) and end a session as
Pega does on its own (a customer's idle timeout, an agent's "End chat", the
widget's "End session"): the emulated widget then forgets that chat.

Standard library only; runnable as a script and importable (see
make_server()).
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

# Token age limits: Pega documents a fixed 5-minute validity; a clock a
# minute ahead is tolerated, nothing more.
MAX_LIFETIME = 300
MAX_FUTURE_IAT = 60
MAX_PAST_IAT = 300

MAX_REQUEST_BODY = 1 << 20
HUGE_BODY_PAD = 2 << 20

FAULT_MODES = (
    "ok", "http500", "http401", "non_json", "no_session_id",
    "bad_session_id", "huge_body", "delay", "reset",
)
FAULT_TARGETS = ("create", "private_data", "all")

# ---- further faults (resilience tests and the load benchmark) ----
# reset_mid_answer: headers and part of the body, then a TCP RST;
# unsafe_session_id: a string sessionId with characters unsafe in HTML/headers;
# huge_chunked: an endless-looking chunked body, no Content-Length to refuse early;
# flap: healthy and failing (fail_mode) alternately, period_ms each, healthy first.
FAULT_MODES += ("reset_mid_answer", "unsafe_session_id", "huge_chunked", "flap")
UNSAFE_SESSION_ID = "abc\"><script>alert(1)</script>\r\nSet-Cookie: x=1"

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class Rejection(Exception):
    """A request the real service would refuse: carries the HTTP status and a
    reason that tests can match on."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --------------------------------------------------------------------------
# JWT (HS256) verification and signing
# --------------------------------------------------------------------------

def b64url_encode(raw):
    """base64url without padding, as JWS compact serialisation requires."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(segment, what):
    """Decode one JWS segment, refusing padding, foreign characters and
    non-canonical encodings (a correct encoder never produces those)."""
    if not B64URL_RE.match(segment) or len(segment) % 4 == 1:
        raise Rejection(401, "%s is not unpadded base64url" % what)
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Rejection(401, "%s is not base64url" % what)
    if b64url_encode(raw) != segment:
        raise Rejection(401, "%s is not canonical base64url" % what)
    return raw


def strict_json_loads(raw, what, status=400):
    """Parse UTF-8 JSON refusing duplicate keys and NaN/Infinity, which
    lenient parsers accept but an interoperable producer never emits."""

    def no_duplicates(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise Rejection(status, "%s has duplicate key %r" % (what, key))
            obj[key] = value
        return obj

    def no_constants(name):
        raise Rejection(status, "%s contains %s" % (what, name))

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection(status, "%s is not UTF-8" % what)
    try:
        return json.loads(
            text, object_pairs_hook=no_duplicates, parse_constant=no_constants
        )
    except ValueError:
        raise Rejection(status, "%s is not JSON" % what)


def is_json_int(value):
    """bool is an int subclass in Python; a JSON true is not a timestamp."""
    return isinstance(value, int) and not isinstance(value, bool)


def split_jwt(token):
    """Split a compact JWS into its decoded header and payload (unverified)
    plus what is needed to check the signature."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise Rejection(401, "token does not have exactly three segments")
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = strict_json_loads(b64url_decode(header_b64, "JWT header"), "JWT header", 401)
    payload = strict_json_loads(b64url_decode(payload_b64, "JWT payload"), "JWT payload", 401)
    signature = b64url_decode(signature_b64, "JWT signature")
    if not isinstance(header, dict):
        raise Rejection(401, "JWT header is not an object")
    if not isinstance(payload, dict):
        raise Rejection(401, "JWT payload is not an object")
    signing_input = (header_b64 + "." + payload_b64).encode("ascii")
    return header, payload, signing_input, signature


def check_jwt_header(header):
    if "alg" not in header:
        raise Rejection(401, "JWT header has no alg")
    if header["alg"] != "HS256":
        raise Rejection(401, "JWT alg is %r, not HS256" % (header["alg"],))
    if "typ" in header and header["typ"] != "JWT":
        raise Rejection(401, "JWT typ is %r, not JWT" % (header["typ"],))
    if "crit" in header:
        raise Rejection(401, "JWT header has crit extensions")


def check_jwt_signature(signing_input, signature, secret):
    expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise Rejection(401, "JWT signature does not verify")


def check_jwt_claims(claims, expected_iss, now):
    if claims.get("iss") != expected_iss:
        raise Rejection(401, "JWT iss %r is not %r" % (claims.get("iss"), expected_iss))
    for name in ("iat", "exp"):
        if name not in claims:
            raise Rejection(401, "JWT has no %s" % name)
        if not is_json_int(claims[name]):
            raise Rejection(401, "JWT %s is not an integer" % name)
    iat, exp = claims["iat"], claims["exp"]
    if iat > now + MAX_FUTURE_IAT:
        raise Rejection(401, "JWT iat is in the future")
    if iat < now - MAX_PAST_IAT:
        raise Rejection(401, "JWT iat is too old")
    if exp <= now:
        raise Rejection(401, "JWT has expired")
    if not 0 < exp - iat <= MAX_LIFETIME:
        raise Rejection(401, "JWT lifetime exp-iat=%d out of (0, %d]" % (exp - iat, MAX_LIFETIME))


def verify_jwt(token, secret, expected_iss, now=None):
    """Verify an HS256 compact JWS and return its claims, or raise Rejection.

    `secret` is bytes (or str, taken as UTF-8); `expected_iss` is the value
    the `iss` claim must equal; `now` (seconds) defaults to the clock.
    """
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    now = int(time.time()) if now is None else now
    header, claims, signing_input, signature = split_jwt(token)
    check_jwt_header(header)
    check_jwt_signature(signing_input, signature, secret)
    check_jwt_claims(claims, expected_iss, now)
    return claims


def sign_jwt(claims, secret, header=None):
    """Mint an HS256 token (for tests of the emulator itself)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    encode = lambda obj: obj if isinstance(obj, bytes) else json.dumps(
        obj, separators=(",", ":")).encode("utf-8")
    signing_input = b64url_encode(encode(header)) + "." + b64url_encode(encode(claims))
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url_encode(mac)


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

class EmulatorState:
    """Everything the service remembers, guarded by one lock: the HTTP
    server is threaded and tests read the state while calls are in flight."""

    def __init__(self, widgets):
        self.initial_widgets = dict(widgets)
        self.widgets = dict(widgets)
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.generation = getattr(self, "generation", 0) + 1
            self.widgets = dict(self.initial_widgets)  # undoes /__emulator/secret
            self.creates = []
            self.private_data = []
            self.rejections = []
            self.faults = []
            self.tokens = []
            self.sessions = {}
            self.widget_events = []
            self.ended = []
            self.connections = 0
            self.tls_failures = 0
            self.fault = {"mode": "ok", "delay_ms": 0, "applies_to": "all", "count": None}
            self.refused_customers = {}  # customerId -> (status, endpoint)

    def snapshot(self):
        with self.lock:
            return {
                "creates": list(self.creates),
                "private_data": list(self.private_data),
                "rejections": list(self.rejections),
                "faults": list(self.faults),
                "tokens": list(self.tokens),
                "sessions": {sid: dict(s) for sid, s in self.sessions.items()},
                "widget_events": list(self.widget_events),
                "ended": list(self.ended),
                "connections": self.connections,
                "tls_failures": self.tls_failures,
                "mode": dict(self.fault),
            }

    def set_fault(self, spec):
        """Validate and install a fault mode; `count` (optional) limits it to
        the next n matching calls, after which the service behaves again."""
        if not isinstance(spec, dict):
            raise Rejection(400, "mode body must be a JSON object")
        mode = spec.get("mode", "ok")
        applies_to = spec.get("applies_to", "all")
        delay_ms = spec.get("delay_ms", 0)
        count = spec.get("count")
        if mode not in FAULT_MODES:
            raise Rejection(400, "unknown mode %r" % (mode,))
        if applies_to not in FAULT_TARGETS:
            raise Rejection(400, "unknown applies_to %r" % (applies_to,))
        if not is_json_int(delay_ms) or delay_ms < 0:
            raise Rejection(400, "delay_ms must be a non-negative integer")
        if count is not None and (not is_json_int(count) or count < 1):
            raise Rejection(400, "count must be a positive integer")
        flap = flap_spec(spec) if mode == "flap" else {}
        with self.lock:
            self.fault = {"mode": mode, "delay_ms": delay_ms,
                          "applies_to": applies_to, "count": count, **flap}

    def take_fault(self, endpoint):
        """The fault to apply to this call of `endpoint`, consuming one use."""
        with self.lock:
            fault = flap_phase(dict(self.fault), time.time())
            if fault["mode"] == "ok" or fault["applies_to"] not in ("all", endpoint):
                return {"mode": "ok", "delay_ms": 0}
            if fault["count"] is not None:
                self.fault["count"] -= 1
                if self.fault["count"] <= 0:
                    self.fault = {"mode": "ok", "delay_ms": 0,
                                  "applies_to": "all", "count": None}
            self.faults.append({"endpoint": endpoint, "mode": fault["mode"],
                                "time": time.time()})
            return fault

    def refusal_for(self, customer, endpoint):
        """The status the service refuses this customer's call of `endpoint`
        with, or None: a fault of one customer's own request, not of the service."""
        with self.lock:
            status, target = self.refused_customers.get(customer, (None, None))
        return status if target in ("all", endpoint) else None

    def record(self, listname, entry):
        with self.lock:
            getattr(self, listname).append(entry)

    def new_session(self, widget, customer_id):
        sid = str(uuid.uuid4())
        with self.lock:
            self.sessions[sid] = {"widget": widget, "customerId": customer_id,
                                  "privateData": None, "ended": None}
        return sid

    def end_session(self, sid, reason):
        """Pega ends the chat: the session stays known, marked ended."""
        with self.lock:
            if sid not in self.sessions:
                return False
            self.sessions[sid]["ended"] = reason
            self.ended.append({"sessionId": sid, "reason": reason, "time": time.time()})
            return True

    def session(self, sid):
        with self.lock:
            found = self.sessions.get(sid)
            return dict(found) if found else None

    def set_private_data(self, sid, data):
        with self.lock:
            self.sessions[sid]["privateData"] = data


def flap_spec(spec):
    """The extra settings of mode flap: period_ms and the fail_mode to use."""
    period_ms = spec.get("period_ms", 5000)
    fail_mode = spec.get("fail_mode", "http500")
    if not is_json_int(period_ms) or period_ms < 1:
        raise Rejection(400, "period_ms must be a positive integer")
    if fail_mode not in FAULT_MODES or fail_mode in ("ok", "flap"):
        raise Rejection(400, "fail_mode must be a fault mode other than ok and flap")
    return {"period_ms": period_ms, "fail_mode": fail_mode, "since": time.time()}


def flap_phase(fault, now):
    """A flap fault as the plain fault of its current phase."""
    if fault["mode"] != "flap":
        return fault
    failing = int((now - fault["since"]) * 1000 // fault["period_ms"]) % 2 == 1
    fault["mode"] = fault["fail_mode"] if failing else "ok"
    return fault


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

def utf8_hex(text):
    """The bytes a string stands for, even with lone surrogates from \\u
    escapes, so tests can compare customer IDs byte for byte."""
    return text.encode("utf-8", "surrogatepass").hex()


class DMRequestHandler(BaseHTTPRequestHandler):
    """One connection; keep-alive is handled by BaseHTTPRequestHandler as long
    as every response carries Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "PegaDMEmulator/1"
    timeout = 30
    # Headers and body leave in two writes; with Nagle on, the body waits for
    # the client's delayed ACK and every call on a kept-alive connection
    # takes ~40 ms instead of well under one.
    disable_nagle_algorithm = True

    # ---- plumbing ----

    @property
    def state(self):
        return self.server.state

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        """Read a Content-Length or chunked body; anything else is refused."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit() or int(length) > MAX_REQUEST_BODY:
            self.close_connection = True
            raise Rejection(400, "bad Content-Length")
        return self.rfile.read(int(length))

    def read_chunked(self):
        body = b""
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                self.close_connection = True
                raise Rejection(400, "bad chunk size")
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline(1024)
            if len(body) > MAX_REQUEST_BODY:
                self.close_connection = True
                raise Rejection(400, "body too large")

    def send_bytes(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj):
        self.send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json")

    def bearer_token(self):
        auth = self.headers.get("Authorization")
        if auth is None:
            raise Rejection(401, "no Authorization header")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Rejection(401, "Authorization is not 'Bearer <token>'")
        self.state.record("tokens", token)
        return token

    def require_json_content_type(self):
        value = self.headers.get("Content-Type", "")
        media, *params = [part.strip() for part in value.split(";")]
        if media.lower() != "application/json":
            raise Rejection(400, "Content-Type %r is not application/json" % value)
        for param in params:
            name, _, pval = param.partition("=")
            if name.strip().lower() == "charset" and pval.strip().strip('"').lower() != "utf-8":
                raise Rejection(400, "charset %r is not utf-8" % pval)

    # ---- dispatch ----

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def dispatch(self, method):
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        try:
            body = self.read_body()
            if path.startswith("/__emulator/"):
                return self.control(method, path, body)
            if len(parts) == 2 and parts[1] == "create":
                return self.only(method, "POST", lambda: self.create(parts[0], body))
            if path == "/private-data":
                return self.only(method, "POST", lambda: self.private_data(body))
            if len(parts) == 2 and parts[1] == "widget.js":
                # HEAD too, as a CDN answers it: the module warms connections so
                if method == "HEAD":
                    return self.widget_js(parts[0])
                return self.only(method, "GET", lambda: self.widget_js(parts[0]))
            raise Rejection(404, "no such endpoint")
        except Rejection as err:
            self.reject(path, err)

    def only(self, method, allowed, action):
        if method != allowed:
            raise Rejection(405, "method %s not allowed" % method)
        return action()

    def reject(self, path, err):
        self.state.record("rejections", {
            "path": path, "status": err.status, "reason": err.reason,
            "time": time.time(),
        })
        self.send_json(err.status, {"error": err.reason})

    # ---- faults ----

    def apply_fault(self, endpoint):
        """Return True if a fault answered (or dropped) the call."""
        generation = self.state.generation
        fault = self.state.take_fault(endpoint)
        mode = fault["mode"]
        if mode == "delay":
            time.sleep(fault["delay_ms"] / 1000.0)
            if self.state.generation == generation:
                return False
            # A reset came while we slept: the test that asked for the delay
            # is over, and a late create must not appear in the next one's record.
            mode = "reset"
        if mode == "ok":
            return False
        if mode == "http500":
            self.send_json(500, {"error": "injected internal error"})
        elif mode == "http401":
            self.send_json(401, {"error": "injected unauthorized"})
        elif mode == "non_json":
            self.send_bytes(200, b"<html><body>Service Unavailable</body></html>", "text/html")
        elif mode == "no_session_id":
            self.send_json(200, {"status": "ok"})
        elif mode == "bad_session_id":
            self.send_json(200, {"sessionId": 12345})
        elif mode == "huge_body":
            pad = "x" * HUGE_BODY_PAD
            self.send_json(200, {"sessionId": str(uuid.uuid4()), "pad": pad})
        elif mode == "reset":
            self.drop_connection()
        else:
            self.apply_further_fault(mode)
        return True

    def apply_further_fault(self, mode):
        if mode == "reset_mid_answer":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"sessionId": "')
            self.wfile.flush()
            self.drop_connection()
        elif mode == "unsafe_session_id":
            self.send_json(200, {"sessionId": UNSAFE_SESSION_ID})
        elif mode == "huge_chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 16384
            try:  # the client is expected to give up long before the end
                head = b'{"sessionId": "s", "pad": "'
                self.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
                for _ in range(HUGE_BODY_PAD // len(chunk)):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b'2\r\n"}\r\n0\r\n\r\n')
            except OSError:
                pass
            self.close_connection = True

    def drop_connection(self):
        """Abort with a TCP RST (SO_LINGER 0) and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    # ---- the service ----

    def create(self, widget, body):
        if widget not in self.state.widgets:
            raise Rejection(404, "unknown widget %r" % widget)
        token = self.bearer_token()
        if self.apply_fault("create"):
            return
        claims = verify_jwt(token, self.state.widgets[widget], widget)
        self.require_json_content_type()
        doc = strict_json_loads(body, "create body")
        if not isinstance(doc, dict) or set(doc) != {"customerId"}:
            raise Rejection(400, "create body must be exactly {\"customerId\": ...}")
        customer = doc["customerId"]
        if not isinstance(customer, str) or not customer:
            raise Rejection(400, "customerId must be a non-empty string")
        refused = self.state.refusal_for(customer, "create")
        if refused:
            raise Rejection(refused, "this customer is refused (/__emulator/refuse)")
        sid = self.state.new_session(widget, customer)
        self.state.record("creates", {
            "widget": widget,
            "customerId": customer,
            "customerIdUtf8Hex": utf8_hex(customer),
            "body_b64": base64.b64encode(body).decode("ascii"),
            "body_latin1": body.decode("latin-1"),
            "claims": claims,
            "sessionId": sid,
            "time": time.time(),
        })
        self.send_json(200, {"sessionId": sid})

    def private_data(self, body):
        token = self.bearer_token()
        if self.apply_fault("private_data"):
            return
        _, unverified, _, _ = split_jwt(token)
        sid = unverified.get("iss")
        session = self.state.session(sid) if isinstance(sid, str) else None
        if session is None:
            raise Rejection(401, "JWT iss %r is not a session this service issued" % (sid,))
        claims = verify_jwt(token, self.state.widgets[session["widget"]], sid)
        self.require_json_content_type()
        doc = strict_json_loads(body, "private-data body")
        if not isinstance(doc, dict):
            raise Rejection(400, "private-data body must be a JSON object")
        refused = self.state.refusal_for(session["customerId"], "private_data")
        if refused:
            raise Rejection(refused, "this customer's private data is refused "
                            "(/__emulator/refuse)")
        self.state.set_private_data(sid, doc)
        self.state.record("private_data", {
            "sessionId": sid,
            "data": doc,
            "body_b64": base64.b64encode(body).decode("ascii"),
            "claims": claims,
            "time": time.time(),
        })
        self.send_json(200, {})

    def widget_js(self, widget):
        if widget not in self.state.widgets:
            raise Rejection(404, "unknown widget %r" % widget)
        self.send_bytes(200, widget_script(), "application/javascript")

    def session_view(self, sid):
        """The service's record of one session, for the emulated widget;
        readable cross-origin by pages on this machine only."""
        record = session_record(self.state, sid)
        body = json.dumps(record or {"error": "no such session"}).encode("utf-8")
        origin = loopback_origin(self.headers.get("Origin"))
        self.send_response(200 if record else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Vary", "Origin")
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
        self.end_headers()
        self.wfile.write(body)

    # ---- control API ----

    def control(self, method, path, body):
        if path.startswith(SESSION_VIEW_PREFIX) and method == "GET":
            return self.session_view(unquote(path[len(SESSION_VIEW_PREFIX):]))
        if path == WIDGET_EVENTS_PATH and method == "POST":
            return self.widget_event(strict_json_loads(body or b"{}", "widget event"))
        if path == "/__emulator/state" and method == "GET":
            return self.send_json(200, self.state.snapshot())
        if path == "/__emulator/reset" and method == "POST":
            self.state.reset()
            return self.send_json(200, {})
        if path == "/__emulator/mode" and method == "POST":
            self.state.set_fault(strict_json_loads(body or b"{}", "mode body"))
            return self.send_json(200, self.state.snapshot()["mode"])
        if path == "/__emulator/secret" and method == "POST":
            return self.set_secret(strict_json_loads(body or b"{}", "secret body"))
        if path == "/__emulator/end-session" and method == "POST":
            return self.end_session(strict_json_loads(body or b"{}", "end-session body"))
        if path == "/__emulator/refuse" and method == "POST":
            return self.refuse_customer(strict_json_loads(body or b"{}", "refuse body"))
        if path == "/__emulator/echo":
            return self.send_json(200, {
                "method": method, "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_b64": base64.b64encode(body).decode("ascii"),
            })
        raise Rejection(404, "no such control endpoint")

    def widget_event(self, event):
        """What the emulated widget did in a page: {"event": "start" | "resume"
        | "end" | "ended", "sessionId", "page", "tab", "at" (the page's clock, ms)}; sent
        with mode no-cors from the page's origin, so the answer is opaque to it."""
        if not isinstance(event, dict) or event.get("event") not in WIDGET_EVENTS:
            raise Rejection(400, "a widget event is {\"event\": %s, ...}" % "|".join(WIDGET_EVENTS))
        self.state.record("widget_events", {
            "event": event["event"], "sessionId": event.get("sessionId"),
            "page": event.get("page"), "tab": event.get("tab"), "at": event.get("at"),
            "time": time.time(),
        })
        return self.send_json(200, {})

    def end_session(self, spec):
        """{"sessionId": sid, "reason": "idle" | "agent" | "customer"}: the
        service ends that chat, as Pega does after the customer's idle
        timeout, an agent's "End chat" or the widget's "End session"."""
        sid = spec.get("sessionId") if isinstance(spec, dict) else None
        reason = spec.get("reason", "idle") if isinstance(spec, dict) else None
        if reason not in END_REASONS:
            raise Rejection(400, "reason must be one of %s" % ", ".join(END_REASONS))
        if not isinstance(sid, str) or not self.state.end_session(sid, reason):
            raise Rejection(404, "no such session %r" % (sid,))
        return self.send_json(200, {})

    def refuse_customer(self, spec):
        """{"customerId": c, "status": 4xx, "applies_to": "create" | "private_data"
        | "all"}: the service answers that customer's calls with status (until
        the next reset), as it would a request it finds wrong for that customer
        alone; every other customer is served as before."""
        spec = spec if isinstance(spec, dict) else {}
        customer, status = spec.get("customerId"), spec.get("status")
        target = spec.get("applies_to", "all")
        if not isinstance(customer, str) or not customer:
            raise Rejection(400, "customerId must be a non-empty string")
        if not is_json_int(status) or not 400 <= status <= 599:
            raise Rejection(400, "status must be an HTTP error status")
        if target not in FAULT_TARGETS:
            raise Rejection(400, "unknown applies_to %r" % (target,))
        with self.state.lock:
            self.state.refused_customers[customer] = (status, target)
        return self.send_json(200, {})

    def set_secret(self, spec):
        """{"widget": id, "secret": s}: the service now verifies that widget's
        tokens with s (as after a key rotation); reset restores the start value."""
        widget = spec.get("widget") if isinstance(spec, dict) else None
        secret = spec.get("secret") if isinstance(spec, dict) else None
        if widget not in self.state.widgets:
            raise Rejection(400, "unknown widget %r" % (widget,))
        if not isinstance(secret, str) or not secret:
            raise Rejection(400, "secret must be a non-empty string")
        with self.state.lock:
            self.state.widgets[widget] = secret.encode("utf-8")
        return self.send_json(200, {})


# --------------------------------------------------------------------------
# The browser side: the emulated widget.js and the session record it shows
# --------------------------------------------------------------------------

WIDGET_JS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "widget.js")
SESSION_VIEW_PREFIX = "/__emulator/session/"
WIDGET_EVENTS_PATH = "/__emulator/widget-events"
# start, resume: the widget shows a chat; end: the page called endChat();
# ended: the widget learnt that the service ended its chat, and forgot it
WIDGET_EVENTS = ("start", "resume", "end", "ended")
END_REASONS = ("idle", "agent", "customer")


def widget_script():
    """The emulated widget (widget.js next to this file), read per request so
    that an edit shows on the next page load."""
    with open(WIDGET_JS_PATH, "rb") as fh:
        return fh.read()


def loopback_origin(origin):
    """`origin` if it is an http(s) origin on this machine (a portal under
    test or the demo), else None."""
    try:
        parts = urlsplit(origin or "")
        host = parts.hostname
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or parts.path or not port_ok:
        return None
    if host == "localhost":
        return origin
    try:
        return origin if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def session_record(state, sid):
    """One session as the widget shows it: its customer and private data,
    nothing of any other session."""
    found = state.session(sid)
    if found is None:
        return None
    return {"sessionId": sid, "widgetId": found["widget"],
            "customerId": found["customerId"], "privateData": found["privateData"],
            "ended": found["ended"]}


class DMServer(ThreadingHTTPServer):
    """Threaded server doing the TLS handshake in the connection's thread, so
    a client that connects and stalls cannot block the accept loop."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when many httpd threads
    # connect at once; the kernel then drops SYNs and the client retries
    # after a second, which would show up as the module's latency.
    request_queue_size = 128

    def __init__(self, address, state, tls_context=None, quiet=False):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.tls_context = tls_context
        self.quiet = quiet
        super().__init__(address, DMRequestHandler)

    @property
    def port(self):
        return self.server_address[1]

    def process_request(self, request, client_address):
        with self.state.lock:
            self.state.connections += 1
        super().process_request(request, client_address)

    def finish_request(self, request, client_address):
        conn = request
        try:
            if self.tls_context is not None:
                request.settimeout(DMRequestHandler.timeout)
                conn = self.tls_context.wrap_socket(request, server_side=True)
            self.RequestHandlerClass(conn, client_address, self)
        except (ssl.SSLError, ConnectionError, socket.timeout) as err:
            if conn is request and self.tls_context is not None:
                with self.state.lock:
                    self.state.tls_failures += 1
            if not self.quiet:
                sys.stderr.write("connection from %s failed: %s\n" % (client_address, err))
        finally:
            if conn is not request:
                conn.close()

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass


def loopback_address(text):
    """argparse type: only loopback addresses, so the emulator is never
    reachable from the network (it accepts a fixed, published secret)."""
    host = "127.0.0.1" if text == "localhost" else text
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("%r is not a loopback address" % text)


def widget_spec(text):
    """argparse type for --widget UUID:SECRET or UUID:@FILE."""
    widget, sep, secret = text.partition(":")
    if not sep or not UUID_RE.match(widget):
        raise argparse.ArgumentTypeError("expected <uuid>:<secret> or <uuid>:@<file>")
    if secret.startswith("@"):
        with open(secret[1:], "r", encoding="utf-8") as fh:
            secret = fh.read().strip()
    if not secret:
        raise argparse.ArgumentTypeError("empty secret for widget %s" % widget)
    return widget, secret.encode("utf-8")


def make_server(widgets, port=0, bind="127.0.0.1", cert=None, key=None, quiet=False):
    """Build (but do not start) an emulator. `widgets` maps widget id to
    secret (str or bytes). Without cert/key it serves plain HTTP."""
    secrets_by_widget = {
        w: (s.encode("utf-8") if isinstance(s, str) else s) for w, s in widgets.items()
    }
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
    return DMServer((bind, port), EmulatorState(secrets_by_widget), context, quiet)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--bind", type=loopback_address, default="127.0.0.1")
    parser.add_argument("--cert", help="server certificate (PEM)")
    parser.add_argument("--key", help="server private key (PEM)")
    parser.add_argument("--plain", action="store_true", help="serve plain HTTP")
    parser.add_argument("--widget", type=widget_spec, action="append", default=[],
                        metavar="UUID:SECRET", help="repeatable; SECRET may be @FILE")
    parser.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = parser.parse_args(argv)
    if not args.plain and not (args.cert and args.key):
        parser.error("--cert and --key are required unless --plain is given")
    if not args.widget:
        parser.error("at least one --widget is required")
    return args


def main(argv=None):
    args = parse_args(argv)
    server = make_server(
        dict(args.widget), args.port, args.bind,
        None if args.plain else args.cert, args.key, args.quiet,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("PORT %d" % server.port, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
