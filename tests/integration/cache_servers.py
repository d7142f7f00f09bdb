"""Real shared caches for tests and benchmarks: redis-server and memcached
from Debian, each on a free loopback port, without persistence, with
bounded waits. stop() and start() again keep the port, so an httpd
configured for it finds the server back after an outage."""

import os
import pwd
import socket
import subprocess
import time

import harness

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


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
        self.workdir = harness.make_public_dir(workdir, "%s-" % self.kind)
        self.port = harness.free_port()
        self.proc = None
        self.log_path = os.path.join(self.workdir, "server.log")

    @property
    def directive(self):
        return "PegaDMCache %s:127.0.0.1:%d" % (self.kind, self.port)

    @property
    def load_line(self):
        return "LoadModule socache_%s_module %s/mod_socache_%s.so\n" % (
            self.kind, harness.APACHE_MODULES, self.kind)

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
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
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

    def command(self):
        args = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:  # memcached refuses to run as root
            for user in ("memcache", "nobody"):
                try:
                    pwd.getpwnam(user)
                    return args + ["-u", user]
                except KeyError:
                    continue
        return args


KINDS = {"redis": RedisServer, "memcache": Memcached}
