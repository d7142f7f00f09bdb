"""The Pega DM emulator (tools/dm-emulator) as a subprocess, and the
throwaway CA its HTTPS certificate comes from."""

import http.client
import json
import os
import re
import selectors
import ssl
import subprocess
import sys
import time

from .client import Response
from .settings import EMULATOR_DIR, EMULATOR_SCRIPT, REQUEST_TIMEOUT, START_TIMEOUT, WIDGET_ID
from .util import load_source, stop_process, to_bytes, write_file


def load_emulator_module():
    """Import the emulator from tools/ (not a package: its folder has a dash)."""
    return load_source("pega_dm_emulator", EMULATOR_SCRIPT)


def load_ca_module():
    """tools/dm-emulator/throwaway_ca.py: make_ca(directory) -> paths."""
    return load_source("throwaway_ca", os.path.join(EMULATOR_DIR, "throwaway_ca.py"))


class Emulator:
    """The DM emulator as a subprocess serving HTTPS with a throwaway CA, or
    (ca=None) plain HTTP on loopback, which a browser can load widget.js from."""

    def __init__(self, workdir, ca, widgets, cert=None, key=None, quiet=False):
        self.workdir = workdir
        self.plain = ca is None
        self.ca_file = None if self.plain else ca["ca"]
        self.widgets = dict(widgets)
        self.cert = cert or (None if self.plain else ca["cert"])
        self.key = key or (None if self.plain else ca["key"])
        self.quiet = quiet  # no request log line per call (the benchmarks)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "emulator-%d.log" % id(self))
        self.context = None if self.plain else ssl.create_default_context(cafile=self.ca_file)

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("http" if self.plain else "https", self.port)

    def start(self):
        args = [sys.executable, EMULATOR_SCRIPT, "--port", "0"]
        args += ["--quiet"] if self.quiet else []
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
        stop_process(self.proc)
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

    def end_session(self, sid, reason="idle"):
        """The service ends the chat of `sid` as Pega would on its own
        (reason "idle", "agent" or "customer"); the widget then forgets it."""
        resp = self.call("POST", "/__emulator/end-session", {"sessionId": sid, "reason": reason})
        assert resp.status == 200, resp

    def refuse_customer(self, customer, status=400, applies_to="all"):
        """The service answers `customer`'s calls with `status` (until the
        next reset); other customers are served."""
        resp = self.call("POST", "/__emulator/refuse",
                         {"customerId": customer, "status": status, "applies_to": applies_to})
        assert resp.status == 200, resp

    def creates_for(self, user):
        """The creates whose customerId is byte-for-byte `user`."""
        want = to_bytes(user).hex()
        return [c for c in self.state()["creates"] if c["customerIdUtf8Hex"] == want]

    def create_count(self):
        return len(self.state()["creates"])

    def creates_per_customer(self):
        """{customerId: number of creates}."""
        counts = {}
        for create in self.state()["creates"]:
            counts[create["customerId"]] = counts.get(create["customerId"], 0) + 1
        return counts
