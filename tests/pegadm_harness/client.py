"""The HTTP client of the tests: one request on a fresh connection
(http_request), the session endpoint's two usual requests, and kept
keep-alive connections that stay with one httpd child."""

import base64
import http.client
import itertools
import json

from .settings import PASSWORD, REQUEST_TIMEOUT, SESSION_PATH
from .util import to_bytes


class Response:
    """What a test needs from an answer: status, headers, raw body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, dict(self.headers), self.body[:300])


def basic_auth_header(user, password=PASSWORD):
    """Basic credentials over the raw bytes of the name (UTF-8 for str), the
    way browsers send non-ASCII names."""
    raw = to_bytes(user) + b":" + to_bytes(password)
    return "Basic " + base64.b64encode(raw).decode("ascii")


def http_request(port, method, path, user=None, password=PASSWORD, headers=None,
                 body=None, timeout=REQUEST_TIMEOUT, host="127.0.0.1"):
    """One request on a fresh connection. `body` may be bytes, str, or a
    dict/list (sent as JSON with Content-Type application/json)."""
    headers = dict(headers or {})
    if user is not None:
        headers["Authorization"] = basic_auth_header(user, password)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def session_get(server, user, path=SESSION_PATH, **kwargs):
    return server.request("GET", path, user=user, **kwargs)


def same_origin_request(server, method, user, path=SESSION_PATH, headers=None, **kwargs):
    """POST/DELETE as the widget does it: from the page's own origin."""
    all_headers = {"Origin": server.origin}
    all_headers.update(headers or {})
    return server.request(method, path, user=user, headers=all_headers, **kwargs)


class KeptConnection:
    """A keep-alive connection held open: under prefork each one is served by
    a child of its own for as long as it stays open. A first request pins it
    to its child (httpd closes a connection after some answers, e.g. 503)."""

    numbers = itertools.count()

    def __init__(self, server):
        self.tag = "kept-%d" % next(self.numbers)
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                               timeout=REQUEST_TIMEOUT)
        self.conn.connect()
        self.conn.auto_open = 0  # a reconnect would silently change the child
        assert self.request("GET", "/index.html").status == 200

    def request(self, method, path, user=None, headers=None, body=None):
        all_headers = {"X-Test-Connection": self.tag}
        all_headers.update(headers or {})
        if user is not None:
            all_headers["Authorization"] = basic_auth_header(user)
        self.conn.request(method, path, body=body, headers=all_headers)
        resp = self.conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())

    def close(self):
        self.conn.close()
