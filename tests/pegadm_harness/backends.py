"""Servers httpd talks to besides the emulator: an echo backend for
ProxyPass, an HTTP CONNECT proxy for PegaDMProxy, and a port that refuses
connections. All on 127.0.0.1, in threads of the test process."""

import json
import selectors
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .util import LoopbackServer


class ClosedPort:
    """A loopback port guaranteed to refuse connections: bound but never
    listening, so no other process can take it while the test runs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
        }).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _echo

    def log_message(self, *args):
        pass


class EchoBackend(LoopbackServer):
    """Answers every request with the request line and headers as JSON, so a
    test can see exactly what httpd forwarded."""

    server_class = ThreadingHTTPServer

    def __init__(self):
        self.serve(_EchoHandler)


def echoed_headers(response, name):
    """All values of header `name` the echo backend received."""
    return [v for k, v in response.json()["headers"] if k.lower() == name.lower()]


class _ConnectHandler(socketserver.StreamRequestHandler):
    timeout = 30
    rbufsize = 0  # unbuffered: after the headers, every byte belongs to the tunnel

    def handle(self):
        request_line = self.rfile.readline(4096).decode("latin-1").strip()
        while self.rfile.readline(4096).strip():
            pass
        method, _, rest = request_line.partition(" ")
        target = rest.split(" ")[0]
        self.server.owner.record(request_line)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._pipe(upstream)

    def _pipe(self, upstream):
        """Copy bytes both ways until either side closes."""
        sel = selectors.DefaultSelector()
        sel.register(self.connection, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, self.connection)
        while True:
            events = sel.select(30)
            if not events:
                return
            for key, _ in events:
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)


class ConnectProxy(LoopbackServer):
    """A forward proxy that only tunnels to loopback, recording each request line."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.serve(_ConnectHandler)

    def record(self, line):
        with self.lock:
            self.requests.append(line)
