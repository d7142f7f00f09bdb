"""Drive a real httpd and the Pega DM emulator from pytest.

conftest.py turns these into fixtures; test modules import the helpers
(location(), pegadm_conf(), Response, ...) directly. Every wait is bounded and
all traffic stays on 127.0.0.1.
"""

import base64
import hashlib
import http.client
import importlib.util
import itertools
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
MODULE_PATH = os.environ.get(
    "PEGADM_TEST_MODULE", os.path.join(REPO_ROOT, "build", "mod_pegadm.so"))
EMULATOR_DIR = os.path.join(REPO_ROOT, "tools", "dm-emulator")
EMULATOR_SCRIPT = os.path.join(EMULATOR_DIR, "pega_dm_emulator.py")

APACHE_BIN = os.environ.get("PEGADM_TEST_APACHE", "/usr/sbin/apache2")
APACHE_MODULES = os.environ.get("PEGADM_TEST_APACHE_MODULES", "/usr/lib/apache2/modules")

WIDGET_ID = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"
WIDGET_SECRET = "Qx7rT2vLm9Kp4Wz8Ns3Hd6Fj1Bc5Vy0Ga2Ue7Io9"
OTHER_WIDGET_ID = "7d1e4f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
OTHER_WIDGET_SECRET = "a-different-secret-for-the-second-widget"
PASSWORD = "correct horse battery staple"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 20.0

# Modules every test server loads; unixd, log_config, so are built in on
# Debian (apache2 -l).
BASE_MODULES = (
    "authz_core", "authz_host", "authz_user", "authn_core", "authn_file",
    "auth_basic", "mime", "include", "cgid", "env", "headers", "setenvif",
    "alias", "dir", "socache_shmcb", "proxy", "proxy_http",
)
MPMS = ("event", "worker", "prefork")

AUTH_LINES = (
    "AuthType Basic",
    'AuthName "pegadm tests"',
    "AuthBasicProvider file",
    "AuthUserFile conf/htpasswd",
    "Require valid-user",
)


def load_emulator_module():
    """Import the emulator from tools/ (not a package: its folder has a dash)."""
    spec = importlib.util.spec_from_file_location("pega_dm_emulator", EMULATOR_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pega_dm_emulator", module)
    spec.loader.exec_module(module)
    return module


def load_ca_module():
    spec = importlib.util.spec_from_file_location(
        "throwaway_ca", os.path.join(EMULATOR_DIR, "throwaway_ca.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------

def make_public_dir(parent=None, prefix="pegadm-it-"):
    """mkdtemp is 0700; httpd children run as www-data and must traverse it."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(path, 0o755)
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ClosedPort:
    """A loopback port guaranteed to refuse connections: bound but never
    listening, so no other process can take it while the test runs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def to_bytes(value):
    # surrogateescape: a test can write a byte that is not UTF-8 ("\udce9" is 0xE9)
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def write_file(path, data, mode=0o644):
    with open(path, "wb") as fh:
        fh.write(to_bytes(data))
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# htpasswd
# --------------------------------------------------------------------------

def htpasswd_line(user, password=PASSWORD):
    """One `{SHA}` htpasswd line for any user name httpd can store.

    mod_authn_file splits at the first ':' and reads line by line, trims
    white space around a line and skips lines starting with '#', so those
    are the names that cannot exist; everything else (quotes, backslashes,
    UTF-8, 300 bytes) can.
    """
    name = to_bytes(user)
    if b":" in name or b"\n" in name or b"\r" in name:
        raise ValueError("user names cannot contain ':' or line breaks: %r" % name)
    if name.startswith(b"#") or name != name.strip():
        raise ValueError("htpasswd cannot hold %r (comment or outer white space)" % name)
    digest = base64.b64encode(hashlib.sha1(to_bytes(password)).digest())
    return name + b":{SHA}" + digest + b"\n"


def write_htpasswd(path, users):
    """`users`: iterable of names (default password) or dict name->password."""
    pairs = users.items() if isinstance(users, dict) else ((u, PASSWORD) for u in users)
    write_file(path, b"".join(htpasswd_line(u, p) for u, p in pairs))


# --------------------------------------------------------------------------
# configuration helpers for tests
# --------------------------------------------------------------------------

def location(path, *directives, auth=True):
    """A <Location> block; with auth=True it sits behind Basic auth against
    the instance's conf/htpasswd."""
    lines = ["<Location %s>" % path]
    lines += ["    " + d for d in (AUTH_LINES if auth else ())]
    lines += ["    " + d for d in directives]
    lines.append("</Location>")
    return "\n".join(lines) + "\n"


SESSION_PATH = "/pegadm/session"
BOOTSTRAP_PATH = "/pegadm/bootstrap.js"


def session_location(path=SESSION_PATH, *directives, auth=True):
    return location(path, "SetHandler pegadm-session", *directives, auth=auth)


def bootstrap_location(path=BOOTSTRAP_PATH, *directives):
    return location(path, "SetHandler pegadm-bootstrap", *directives, auth=False)


def pegadm_conf(emulator=None, widget=WIDGET_ID, secret=WIDGET_SECRET,
                service_url=None, ca_file=None, extra=()):
    """Server-level pegadm directives pointing at the emulator."""
    lines = ["PegaDMWidgetID %s" % widget]
    if secret is not None:
        lines.append('PegaDMJWTSecret "%s"' % secret)
    if service_url is None and emulator is not None:
        service_url = emulator.url
    if service_url:
        lines.append("PegaDMServiceURL %s" % service_url)
    ca_file = ca_file or (emulator.ca_file if emulator is not None else None)
    if ca_file:
        lines.append('PegaDMCAFile "%s"' % ca_file)
    lines += list(extra)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# the emulator
# --------------------------------------------------------------------------

class Emulator:
    """The DM emulator as a subprocess serving HTTPS with a throwaway CA, or
    (ca=None) plain HTTP on loopback, which a browser can load widget.js from."""

    def __init__(self, workdir, ca, widgets, cert=None, key=None):
        self.workdir = workdir
        self.plain = ca is None
        self.ca_file = None if self.plain else ca["ca"]
        self.widgets = dict(widgets)
        self.cert = cert or (None if self.plain else ca["cert"])
        self.key = key or (None if self.plain else ca["key"])
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "emulator-%d.log" % id(self))
        self.context = None if self.plain else ssl.create_default_context(cafile=self.ca_file)

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("http" if self.plain else "https", self.port)

    def start(self):
        args = [sys.executable, EMULATOR_SCRIPT, "--port", "0"]
        args += ["--plain"] if self.plain else ["--cert", self.cert, "--key", self.key]
        for widget, secret in self.widgets.items():
            secret_file = write_file(
                os.path.join(self.workdir, "emulator-secret-%s" % widget), secret, 0o600)
            args += ["--widget", "%s:@%s" % (widget, secret_file)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        self.port = self._read_port()
        return self

    def _read_port(self):
        """Read the `PORT n` line, bounded: a hung emulator must not hang the suite."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                self.stop()
                raise AssertionError("emulator did not print PORT:\n" + self.log())
            chunk = os.read(self.proc.stdout.fileno(), 256)
            if not chunk:
                raise AssertionError("emulator exited:\n" + self.log())
            buf += chunk
        sel.close()
        match = re.match(rb"PORT (\d+)\n", buf)
        assert match, "unexpected emulator output %r" % buf
        return int(match.group(1))

    def log(self):
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-5000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def call(self, method, path, body=None, headers=None):
        """A request to the emulator over HTTPS, verified against the test CA."""
        if self.plain:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        else:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.context, timeout=REQUEST_TIMEOUT)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode("utf-8")
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def state(self):
        resp = self.call("GET", "/__emulator/state")
        assert resp.status == 200, resp
        return resp.json()

    def reset(self):
        assert self.call("POST", "/__emulator/reset").status == 200

    def set_mode(self, mode, applies_to="all", delay_ms=0, count=None, **extra):
        """`extra`: further settings of a mode, e.g. period_ms and fail_mode of flap."""
        spec = {"mode": mode, "applies_to": applies_to, "delay_ms": delay_ms}
        if count is not None:
            spec["count"] = count
        spec.update(extra)
        resp = self.call("POST", "/__emulator/mode", spec)
        assert resp.status == 200, resp

    def set_secret(self, secret, widget=WIDGET_ID):
        """The service verifies the widget's tokens with `secret` from now on
        (until the next reset)."""
        resp = self.call("POST", "/__emulator/secret", {"widget": widget, "secret": secret})
        assert resp.status == 200, resp

    def creates_for(self, user):
        """The creates whose customerId is byte-for-byte `user`."""
        want = to_bytes(user).hex()
        return [c for c in self.state()["creates"] if c["customerIdUtf8Hex"] == want]


# --------------------------------------------------------------------------
# a plain HTTP echo backend (for ProxyPass tests)
# --------------------------------------------------------------------------

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


class EchoBackend:
    """Answers every request with the request line and headers as JSON, so a
    test can see exactly what httpd forwarded."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def echoed_headers(response, name):
    """All values of header `name` the echo backend received."""
    return [v for k, v in response.json()["headers"] if k.lower() == name.lower()]


# --------------------------------------------------------------------------
# a fake memcached (shared cache tests)
# --------------------------------------------------------------------------

class _MemcachedHandler(socketserver.StreamRequestHandler):
    """The memcached text protocol, as much as apr_memcache uses."""

    timeout = 30

    def handle(self):
        store = self.server.owner
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            words = line.split()
            if not words:
                continue
            command, args = words[0].lower(), words[1:]
            store.record(command)
            if command in (b"set", b"add", b"replace"):
                data = self.rfile.read(int(args[3]) + 2)[:-2]
                reply = store.put(command, args[0], int(args[1]), int(args[2]), data)
            elif command in (b"get", b"gets"):
                reply = b"".join(store.get_reply(key) for key in args) + b"END\r\n"
            elif command == b"delete":
                reply = store.delete(args[0])
            elif command == b"version":
                reply = b"VERSION 1.6.0-fake\r\n"
            elif command == b"quit":
                return
            else:
                reply = b"ERROR\r\n"
            self.wfile.write(reply)


class FakeMemcached:
    """An in-process memcached, so a test can read and tamper with exactly
    what the module puts in a shared cache."""

    def __init__(self):
        self.items = {}
        self.commands = []
        self.lock = threading.Lock()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _MemcachedHandler)
        self.server.daemon_threads = True
        self.server.owner = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, command):
        with self.lock:
            self.commands.append(command.decode())

    def put(self, command, key, flags, exptime, data):
        with self.lock:
            exists = key in self.items
            if (command == b"add" and exists) or (command == b"replace" and not exists):
                return b"NOT_STORED\r\n"
            self.items[key] = (flags, exptime, data)
        return b"STORED\r\n"

    def get_reply(self, key):
        with self.lock:
            item = self.items.get(key)
        if item is None:
            return b""
        flags, _, data = item
        return b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(data), data)

    def delete(self, key):
        with self.lock:
            return b"DELETED\r\n" if self.items.pop(key, None) else b"NOT_FOUND\r\n"

    def snapshot(self):
        with self.lock:
            return dict(self.items)

    def tamper_all(self):
        """Flip one bit in the middle of every stored value."""
        with self.lock:
            for key, (flags, exptime, data) in list(self.items.items()):
                middle = len(data) // 2
                flipped = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
                self.items[key] = (flags, exptime, flipped)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# an HTTP CONNECT proxy (PegaDMProxy tests)
# --------------------------------------------------------------------------

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


class ConnectProxy:
    """A forward proxy that only tunnels to loopback, recording each request line."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ConnectHandler)
        self.server.daemon_threads = True
        self.server.owner = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, line):
        with self.lock:
            self.requests.append(line)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# httpd
# --------------------------------------------------------------------------

SSI_PAGE = """\
SID=[<!--#echo var="PEGADM_SESSION_ID" -->]
WID=[<!--#echo var="PEGADM_WIDGET_ID" -->]
"""

CGI_SCRIPT = """\
#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
printf 'SID=[%s]\\n' "${PEGADM_SESSION_ID-(unset)}"
printf 'WID=[%s]\\n' "${PEGADM_WIDGET_ID-(unset)}"
printf 'USER=[%s]\\n' "${REMOTE_USER-}"
"""


def parse_vars(body):
    """SID/WID/USER values from the SSI page or CGI script, as bytes."""
    return {m.group(1).decode(): m.group(2)
            for m in re.finditer(rb"^(SID|WID|USER)=\[(.*)\]$", body, re.M)}


def load_module_lines(mpm, load_pegadm):
    lines = ["LoadModule mpm_%s_module %s/mod_mpm_%s.so" % (mpm, APACHE_MODULES, mpm)]
    lines += ["LoadModule %s_module %s/mod_%s.so" % (m, APACHE_MODULES, m)
              for m in BASE_MODULES]
    if load_pegadm:
        lines.append('LoadModule pegadm_module "%s"' % MODULE_PATH)
    return "\n".join(lines)


# Spare-thread bounds that the started children already satisfy: an idle
# server then spawns no child that a stop could catch half-started.
MPM_TUNING = {
    "event": "StartServers 2\nThreadsPerChild 25\nMaxRequestWorkers 150\n"
             "MinSpareThreads 25\nMaxSpareThreads 75\n",
    "worker": "StartServers 2\nThreadsPerChild 25\nMaxRequestWorkers 150\n"
              "MinSpareThreads 25\nMaxSpareThreads 75\n",
    "prefork": "StartServers 5\nMinSpareServers 5\nMaxSpareServers 20\nMaxRequestWorkers 80\n",
}


def render_httpd_conf(root, port, body, mpm="event", loglevel="info", load_pegadm=True):
    """A complete httpd.conf: a small site under `root`, then `body`."""
    assert mpm in MPMS, mpm
    run_as = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    return """\
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
{modules}
{run_as}CoreDumpDirectory "{root}/cores"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
ScriptSock "{root}/run/cgisock"
ErrorLog "{root}/logs/error.log"
LogLevel {loglevel}
LogFormat "%h %u %t \\"%r\\" %>s %b sid=%{{PEGADM_SESSION_ID}}e" pegadm
CustomLog "{root}/logs/access.log" pegadm
TypesConfig /etc/mime.types
Timeout 20
KeepAlive On
{tuning}
DocumentRoot "{root}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}/htdocs">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
    Require all granted
</Directory>
ScriptAlias /cgi-bin/ "{root}/cgi-bin/"
<Directory "{root}/cgi-bin">
    Options +ExecCGI
    Require all granted
</Directory>
# ---- test configuration ----
{body}
""".format(root=root, port=port, modules=load_module_lines(mpm, load_pegadm),
           run_as=run_as, loglevel=loglevel, tuning=MPM_TUNING[mpm], body=body)


# Each holds a copy of SSI_PAGE, so tests can give each URL its own settings.
SSI_DIRS = ("htdocs/eager", "htdocs/open", "htdocs/plain")


def populate_server_root(root, users):
    """The files the generated configuration refers to."""
    for sub in ("conf", "run", "logs", "htdocs", "cgi-bin") + SSI_DIRS:
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chmod(os.path.join(root, sub), 0o755)
    # Children (www-data) dump core here; see Httpd.crashes().
    os.makedirs(os.path.join(root, "cores"), exist_ok=True)
    os.chmod(os.path.join(root, "cores"), 0o1777)
    write_htpasswd(os.path.join(root, "conf", "htpasswd"), users)
    write_file(os.path.join(root, "htdocs", "index.html"), "harness ok\n")
    for sub in ("htdocs",) + SSI_DIRS:
        write_file(os.path.join(root, sub, "session.shtml"), SSI_PAGE)
    write_file(os.path.join(root, "cgi-bin", "session.cgi"), CGI_SCRIPT, 0o755)


def allow_core_dumps():
    """preexec_fn: lift the core size limit so a crashing child leaves a core."""
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def backtrace(core_path):
    """All threads' backtraces from a core, or a note why there are none."""
    if not shutil.which("gdb"):
        return "(gdb not installed: no backtrace)"
    proc = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "thread apply all bt", APACHE_BIN, core_path],
        capture_output=True, timeout=60)
    return proc.stdout.decode("utf-8", "replace")[-6000:]


class Httpd:
    """One httpd instance with its own ServerRoot, logs and port."""

    def __init__(self, workdir, conf="", users=("alice", "bob"), mpm="event",
                 loglevel="info", env=None, load_pegadm=True):
        self.root = make_public_dir(workdir, "httpd-")
        self.conf_body = conf
        self.users = users
        self.mpm = mpm
        self.loglevel = loglevel
        self.env = env or {}
        self.load_pegadm = load_pegadm
        self.port = None
        self.proc = None
        self.conf_path = os.path.join(self.root, "conf", "httpd.conf")
        self.error_log_path = os.path.join(self.root, "logs", "error.log")
        self.access_log_path = os.path.join(self.root, "logs", "access.log")
        self.stdout_path = os.path.join(self.root, "logs", "stdout.log")

    def write_config(self):
        populate_server_root(self.root, self.users)
        self.port = free_port()
        text = render_httpd_conf(self.root, self.port, self.conf_body, self.mpm,
                                 self.loglevel, self.load_pegadm)
        write_file(self.conf_path, text)

    def start(self):
        """Start in the foreground (its own process group) and wait until it
        answers; on failure the assertion carries the error log."""
        self.write_config()
        env = apache_env(self.env)
        with open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=allow_core_dumps)
        try:
            wait_for(self._answers, self.start_timeout, 0.1, "httpd to answer")
        except (TimeoutError, RuntimeError) as err:
            self.stop()
            raise AssertionError("httpd did not start (%s)\n%s" % (err, self.logs()))
        return self

    # A subclass may run httpd differently (e.g. under valgrind, -X).
    start_timeout = START_TIMEOUT

    def command(self):
        """The command line running this instance in the foreground."""
        return [APACHE_BIN, "-f", self.conf_path, "-DFOREGROUND"]

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("httpd exited with %d" % self.proc.returncode)
        try:
            return http_request(self.port, "GET", "/index.html", timeout=2).status > 0
        except OSError:
            return False

    def stop(self):
        """SIGTERM, bounded wait; then SIGKILL the instance's process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._wait_children_settled()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _children(self):
        """PIDs whose parent is this httpd (from /proc)."""
        pids = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.add(int(entry))
        return pids

    def _wait_children_settled(self, quiet=0.3, limit=3.0):
        """Waits (bounded) until no child has come or gone for `quiet`
        seconds: httpd's SIGTERM handler exits a child that is still
        starting up in a way that can crash inside libc, which would read
        as a module crash."""
        deadline = time.monotonic() + limit
        seen, since = self._children(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self._children()
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def read(self, path):
        try:
            with open(path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def error_log(self):
        return self.read(self.error_log_path)

    def access_log(self):
        return self.read(self.access_log_path)

    def logs(self):
        return "---- stdout/stderr ----\n%s\n---- error.log (tail) ----\n%s" % (
            self.read(self.stdout_path)[-4000:], self.error_log()[-8000:])

    def crashes(self):
        """Error log lines reporting a child killed by a signal, plus a
        backtrace of each core file when gdb is there: a crashing module is
        otherwise invisible behind the parent restarting the child."""
        found = [line for line in self.error_log().splitlines()
                 if re.search(r"exit signal|AH00052|AH00060|segmentation fault", line, re.I)]
        cores = os.path.join(self.root, "cores")
        for name in sorted(os.listdir(cores)) if os.path.isdir(cores) else ():
            found.append("core file %s\n%s" % (name, backtrace(os.path.join(cores, name))))
        return found

    def request(self, method, path, user=None, **kwargs):
        return http_request(self.port, method, path, user=user, **kwargs)

    @property
    def origin(self):
        return "http://127.0.0.1:%d" % self.port


# --------------------------------------------------------------------------
# apache2 -t
# --------------------------------------------------------------------------

class ConfigTestResult:
    """Unpacks as (returncode, output); also knows the file and can find
    the line of a directive in it."""

    def __init__(self, returncode, output, path, text):
        self.returncode = returncode
        self.output = output
        self.path = path
        self.text = text

    def __iter__(self):
        return iter((self.returncode, self.output))

    def line_of(self, needle):
        for number, line in enumerate(self.text.splitlines(), 1):
            if needle in line:
                return number
        raise ValueError("%r not in configuration" % needle)


def config_test(conf_text, workdir=None, load_pegadm=True, env=None):
    """Run `apache2 -t` on the standard test configuration plus conf_text."""
    root = make_public_dir(workdir, "configtest-")
    populate_server_root(root, ("alice",))
    text = render_httpd_conf(root, free_port(), conf_text, load_pegadm=load_pegadm)
    path = write_file(os.path.join(root, "conf", "httpd.conf"), text)
    run_env = apache_env(env)
    proc = subprocess.run([APACHE_BIN, "-t", "-f", path], capture_output=True,
                          env=run_env, timeout=30)
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return ConfigTestResult(proc.returncode, output, path, text)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# the module's answers
# --------------------------------------------------------------------------

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9._~:-]{1,128}$")


def portal_conf(emulator=None, *blocks, service_url=None, server_extra=(), **kwargs):
    """The usual test site: pegadm at server level, the JSON endpoint behind
    Basic auth, the public bootstrap script, then any extra blocks."""
    return (pegadm_conf(emulator, service_url=service_url, extra=server_extra, **kwargs)
            + session_location() + bootstrap_location() + "".join(blocks))


def assert_protective_headers(resp):
    """Every answer of the JSON endpoint, errors included, must carry these."""
    assert "no-store" in (resp.header("Cache-Control") or ""), resp
    assert (resp.header("X-Content-Type-Options") or "").lower() == "nosniff", resp


def assert_json_error(resp, status, code=None):
    """A contract error: the status, JSON {"error", "message"}, protective headers."""
    assert resp.status == status, resp
    assert_protective_headers(resp)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    doc = resp.json()
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    if code is not None:
        assert doc["error"] == code, doc
    return doc


def assert_retry_after(resp, most=None):
    value = resp.header("Retry-After")
    assert value is not None and value.isdigit() and int(value) > 0, resp
    if most is not None:
        assert int(value) <= most, resp
    return int(value)


def assert_session(resp, widget=WIDGET_ID):
    """A 200 from the JSON endpoint; returns the session ID."""
    assert resp.status == 200, resp
    assert_protective_headers(resp)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    doc = resp.json()
    assert doc.get("widgetId") == widget, doc
    sid = doc.get("sessionId")
    assert isinstance(sid, str) and SESSION_ID_RE.match(sid), doc
    return sid


def session_get(server, user, path=SESSION_PATH, **kwargs):
    return server.request("GET", path, user=user, **kwargs)


def same_origin_request(server, method, user, path=SESSION_PATH, headers=None, **kwargs):
    """POST/DELETE as the widget does it: from the page's own origin."""
    all_headers = {"Origin": server.origin}
    all_headers.update(headers or {})
    return server.request(method, path, user=user, headers=all_headers, **kwargs)


def pegadm_log_lines(text):
    """Error log lines the module wrote (httpd tags them [pegadm:level])."""
    return [line for line in text.splitlines() if "[pegadm:" in line]


# --------------------------------------------------------------------------
# several child processes: kept connections, and which child served what
# --------------------------------------------------------------------------

# Server-level directives logging the PID that served each request, and
# the kept connection (KeptConnection.tag) it came on.
PIDS_LOG = ('LogFormat "%P %>s %m %U %{X-Test-Connection}i" pegadm_pids',
            "CustomLog logs/pids.log pegadm_pids")


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


def children_serving(server, conns, requests, path=SESSION_PATH):
    """{tag: set of PIDs} for the kept connections' requests for `path`, from
    pids.log (see PIDS_LOG), once all `requests` of them are logged (a line
    is written after its answer, so the log may lag behind the client)."""
    log = os.path.join(server.root, "logs", "pids.log")
    tags = {conn.tag for conn in conns}

    def lines():
        found = [line.split() for line in server.read(log).splitlines()]
        found = [f for f in found if len(f) == 5 and f[3] == path and f[4] in tags]
        return found if len(found) >= requests else None

    pids = {tag: set() for tag in tags}
    for pid, _, _, _, tag in wait_for(lines, 5, what="%d lines in pids.log" % requests):
        pids[tag].add(pid)
    return pids


def assert_one_child_each(pids):
    """Each connection stayed with one child, and no two shared one."""
    assert all(len(p) == 1 for p in pids.values()), pids
    assert len(set.union(*pids.values())) == len(pids), pids


# --------------------------------------------------------------------------
# sanitizers and graceful restarts
# --------------------------------------------------------------------------

# A module built with -DPEGADM_SANITIZE=ON runs in Debian's (uninstrumented)
# httpd with the sanitizer runtime preloaded; scripts/test sets these two.
SANITIZER_RUNTIME = os.environ.get("PEGADM_TEST_SANITIZER_RUNTIME")
SANITIZER_LOGS = os.environ.get("PEGADM_TEST_SANITIZER_LOGS")


def sanitizer_env():
    """Environment for every httpd process when sanitizers are on: each
    report goes to a file of its own (asan.<pid>, ubsan.<pid>) under
    SANITIZER_LOGS, where the test run looks for them."""
    if not SANITIZER_RUNTIME:
        return {}
    assert SANITIZER_LOGS, "PEGADM_TEST_SANITIZER_LOGS must name a directory"
    return {
        "LD_PRELOAD": SANITIZER_RUNTIME,
        # httpd frees its pools at exit but not every library's globals:
        # leak reports would be about them, not about requests.
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:log_path=%s/asan"
                        % SANITIZER_LOGS,
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:log_path=%s/ubsan"
                         % SANITIZER_LOGS,
    }


def apache_env(extra=None):
    """The environment of every apache2 the tests run."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    env.update(sanitizer_env())
    env.update(extra or {})
    return env


def sanitizer_reports():
    """{file name: text} of the sanitizer reports written so far."""
    if not SANITIZER_LOGS or not os.path.isdir(SANITIZER_LOGS):
        return {}
    reports = {}
    for name in sorted(os.listdir(SANITIZER_LOGS)):
        with open(os.path.join(SANITIZER_LOGS, name), "rb") as fh:
            reports[name] = fh.read().decode("utf-8", "replace")
    return reports


def graceful_restart(server, timeout=START_TIMEOUT):
    """`apache2 -k graceful` on a running Httpd; returns once the new
    generation runs (httpd logs "resuming normal operations" again)."""
    marker = "resuming normal operations"
    before = server.error_log().count(marker)
    proc = subprocess.run([APACHE_BIN, "-f", server.conf_path, "-k", "graceful"],
                          capture_output=True, env=apache_env(server.env), timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: server.error_log().count(marker) > before, timeout,
             what="the graceful restart to complete")
