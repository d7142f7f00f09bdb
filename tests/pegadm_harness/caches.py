"""Shared caches for the module's PegaDMCache: an in-process fake
memcached a test can read and tamper with, and the real redis-server and
memcached from Debian."""

import os
import pwd
import socket
import socketserver
import subprocess
import threading
import time

from .settings import APACHE_MODULES, START_TIMEOUT
from .util import LoopbackServer, free_port, make_public_dir, stop_process


# ---- a fake memcached, in the test process ----

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


class FakeMemcached(LoopbackServer):
    """An in-process memcached, so a test can read and tamper with exactly
    what the module puts in a shared cache."""

    def __init__(self):
        self.items = {}
        self.commands = []
        self.lock = threading.Lock()
        self.serve(_MemcachedHandler)

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


# ---- real cache servers: redis-server and memcached from Debian ----
# stop() and start() again keep the port, so an httpd configured for it
# finds the server back after an outage.

def _answers(port, probe, expect):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(probe)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


class CacheServer:
    """One cache server process; `kind` is the socache provider's name."""

    kind = None
    probe = expect = None

    def __init__(self, workdir):
        self.workdir = make_public_dir(workdir, "%s-" % self.kind)
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.workdir, "server.log")

    @property
    def provider(self):
        """The socache provider argument, e.g. redis:127.0.0.1:6379."""
        return "%s:127.0.0.1:%d" % (self.kind, self.port)

    @property
    def directive(self):
        return "PegaDMCache " + self.provider

    @property
    def load_line(self):
        return "LoadModule socache_%s_module %s/mod_socache_%s.so\n" % (
            self.kind, APACHE_MODULES, self.kind)

    def command(self):
        raise NotImplementedError

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port, self.probe, self.expect):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("%s did not start on port %d:\n%s" % (
                    self.kind, self.port, self.log()))
            time.sleep(0.05)
        return self

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def log(self):
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-3000:]


class RedisServer(CacheServer):
    kind = "redis"
    probe, expect = b"PING\r\n", b"+PONG"

    def command(self):
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--daemonize", "no", "--protected-mode", "yes"]


class Memcached(CacheServer):
    kind = "memcache"
    probe, expect = b"version\r\n", b"VERSION"
    memory_mb = 64

    def command(self):
        args = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                "-m", str(self.memory_mb)]
        if os.geteuid() == 0:  # memcached refuses to run as root
            for user in ("memcache", "nobody"):
                try:
                    pwd.getpwnam(user)
                    return args + ["-u", user]
                except KeyError:
                    continue
        return args


KINDS = {"redis": RedisServer, "memcache": Memcached}
