"""Shared caches for the module's PegaDMCache: an in-process fake
memcached a test can read and tamper with; the real redis-server and
memcached from Debian, Redis over TLS only (a throwaway CA made with
openssl) with a password and ACL users, a three-node Redis Cluster;
servers that hang (SIGSTOP, a connection accepted and never answered, a
connect that never completes)."""

import contextlib
import os
import pwd
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time

from .settings import APACHE_MODULES, START_TIMEOUT, STOP_TIMEOUT
from .util import LoopbackServer, free_port, make_public_dir, stop_process, wait_for, write_file


# ---- a fake memcached, in the test process ----

class _MemcachedHandler(socketserver.StreamRequestHandler):
    """The memcached text protocol, as much as the module's client uses:
    get, gets (with a CAS value), set, add, replace, cas (an expiry below
    zero removes the item, as memcached does), delete."""

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
            elif command == b"cas":
                data = self.rfile.read(int(args[3]) + 2)[:-2]
                reply = store.cas(args[0], int(args[1]), int(args[2]), data, int(args[4]))
            elif command in (b"get", b"gets"):
                reply = b"".join(store.get_reply(key, command == b"gets")
                                 for key in args) + b"END\r\n"
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
        self.uniques = {}  # key -> its CAS value, new with every write
        self.counter = 0
        self.commands = []
        self.lock = threading.Lock()
        self.serve(_MemcachedHandler)

    def _stored(self, key, item):
        self.items[key] = item
        self.counter += 1
        self.uniques[key] = self.counter

    def record(self, command):
        with self.lock:
            self.commands.append(command.decode())

    def put(self, command, key, flags, exptime, data):
        with self.lock:
            exists = key in self.items
            if (command == b"add" and exists) or (command == b"replace" and not exists):
                return b"NOT_STORED\r\n"
            self._stored(key, (flags, exptime, data))
        return b"STORED\r\n"

    def cas(self, key, flags, exptime, data, unique):
        with self.lock:
            if key not in self.items:
                return b"NOT_FOUND\r\n"
            if self.uniques.get(key) != unique:
                return b"EXISTS\r\n"
            if exptime < 0:
                del self.items[key]
            else:
                self._stored(key, (flags, exptime, data))
        return b"STORED\r\n"

    def get_reply(self, key, with_cas=False):
        with self.lock:
            item = self.items.get(key)
            unique = self.uniques.get(key, 0)
        if item is None:
            return b""
        flags, _, data = item
        if with_cas:
            return b"VALUE %s %d %d %d\r\n%s\r\n" % (key, flags, len(data), unique, data)
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
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("%s did not start on port %d:\n%s" % (
                    self.kind, self.port, self.log()))
            time.sleep(0.05)
        return self

    def answers(self):
        return _answers(self.port, self.probe, self.expect)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot die of SIGTERM
        stop_process(self.proc)
        self.proc = None

    def log(self):
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-3000:]


class RedisServer(CacheServer):
    kind = "redis"
    probe, expect = b"PING\r\n", b"+PONG"

    @property
    def url(self):
        """PegaDMCache's value for the module's own client: redis://..."""
        return "redis://127.0.0.1:%d" % self.port

    def command(self):
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--daemonize", "no", "--protected-mode", "yes"]

    def cli(self, *args, check=True):
        """One redis-cli command against this server; its output."""
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                             capture_output=True, timeout=STOP_TIMEOUT, check=check)
        return out.stdout.decode("utf-8", "replace").strip()


class Memcached(CacheServer):
    kind = "memcache"
    probe, expect = b"version\r\n", b"VERSION"
    memory_mb = 64

    @property
    def url(self):
        return "memcache://127.0.0.1:%d" % self.port

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


def memcache_url(servers):
    """PegaDMCache's value for several memcached: keys hashed among them."""
    return "memcache://" + ",".join("127.0.0.1:%d" % s.port for s in servers)


def all_stopped(pid):
    """Whether every thread of pid is stopped: kill() returns before they
    all are, and a request sent at once may still be answered."""
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return True
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, task), encoding="ascii") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("T", "t"):
            return False
    return True


@contextlib.contextmanager
def paused(*servers):
    """The servers stopped with SIGSTOP for the with block (what a frozen
    VM, a full network queue or a failover in progress look like to a
    client); SIGCONT always follows, whatever the block raised."""
    stopped = []
    try:
        for server in servers:
            os.kill(server.proc.pid, signal.SIGSTOP)
            stopped.append(server)
        for server in stopped:
            wait_for(lambda: all_stopped(server.proc.pid), STOP_TIMEOUT, 0.005,
                     "SIGSTOP to take hold of %d" % server.proc.pid)
        yield
    finally:
        for server in stopped:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)


# ---- Redis over TLS, with a password or ACL users ----

def _openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True,
                   timeout=STOP_TIMEOUT)


class CacheCA:
    """A throwaway CA made with openssl at test time, its server certificate
    (for NAME, 127.0.0.1 and ::1, and nothing else: "localhost" is a wrong
    host name), a client certificate, and an unrelated CA (a wrong CA)."""

    NAME = "cache.test"
    EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

    def __init__(self, workdir):
        self.dir = make_public_dir(workdir, "cache-ca-")
        self.ca_cert = self._ca("ca", "mod_pegadm test cache CA")
        self.other_ca_cert = self._ca("other-ca", "an unrelated CA")
        self.server_cert, self.server_key = self._leaf(
            "server", self.NAME, "subjectAltName=DNS:%s,IP:127.0.0.1,IP:::1\n"
            "extendedKeyUsage=serverAuth\n" % self.NAME)
        self.client_cert, self.client_key = self._leaf(
            "client", "mod_pegadm", "extendedKeyUsage=clientAuth\n")

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, subject):
        _openssl(self.dir, "req", "-x509", *self.EC, "-keyout", name + ".key", "-out",
                 name + ".crt", "-days", "30", "-subj", "/CN=" + subject,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self._path(name + ".crt"), 0o644)
        return self._path(name + ".crt")

    def _leaf(self, name, subject, extensions):
        write_file(self._path(name + ".ext"), "basicConstraints=CA:FALSE\n" + extensions)
        _openssl(self.dir, "req", "-new", *self.EC, "-keyout", name + ".key", "-out",
                 name + ".csr", "-subj", "/CN=" + subject)
        _openssl(self.dir, "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey",
                 "ca.key", "-CAcreateserial", "-days", "30", "-out", name + ".crt",
                 "-extfile", name + ".ext")
        os.chmod(self._path(name + ".crt"), 0o644)
        os.chmod(self._path(name + ".key"), 0o600)
        return self._path(name + ".crt"), self._path(name + ".key")

    def client_context(self, client_cert=False):
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        ctx.check_hostname = False  # the probes connect to 127.0.0.1, in the SAN anyway
        if client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


class TLSRedisServer(RedisServer):
    """redis-server on a TLS port only (no plain port), on 127.0.0.1 and
    ::1, with the CA's server certificate. password: the default user's
    (requirepass); users: {name: password} of an ACL file, whose default
    user is off; client_certs: tls-auth-clients yes (else no)."""

    def __init__(self, workdir, ca, password=None, users=None, client_certs=False):
        super().__init__(workdir)
        self.ca, self.password, self.users = ca, password, users or {}
        self.client_certs = client_certs

    @property
    def url(self):
        return "rediss://127.0.0.1:%d" % self.port

    def command(self):
        args = ["redis-server", "--bind", "127.0.0.1", "::1", "--port", "0",
                "--tls-port", str(self.port), "--tls-cert-file", self.ca.server_cert,
                "--tls-key-file", self.ca.server_key, "--tls-ca-cert-file", self.ca.ca_cert,
                "--tls-auth-clients", "yes" if self.client_certs else "no",
                "--save", "", "--appendonly", "no", "--dir", self.workdir, "--daemonize", "no"]
        if self.users:
            lines = ["user default off"] + [
                "user %s on >%s ~* &* +@all -flushall -flushdb -keys -config" % (name, pw)
                for name, pw in self.users.items()]
            args += ["--aclfile", write_file(os.path.join(self.workdir, "users.acl"),
                                             "\n".join(lines) + "\n", 0o600)]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def answers(self):
        """A TLS PING answered, +PONG or -NOAUTH alike: the server is up."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw, \
                    self.ca.client_context(self.client_certs).wrap_socket(raw) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64)[:1] in (b"+", b"-")
        except (OSError, ssl.SSLError):
            return False

    def cli(self, *args, check=True, user=None):
        """redis-cli over TLS, authenticated as user (or with the password):
        the password goes through the environment, never the command line."""
        env = dict(os.environ)
        auth = []
        if self.users:
            user = user or next(iter(self.users))
            env["REDISCLI_AUTH"] = self.users[user]
            auth = ["--user", user]
        elif self.password:
            env["REDISCLI_AUTH"] = self.password
        tls = ["--tls", "--cacert", self.ca.ca_cert]
        if self.client_certs:
            tls += ["--cert", self.ca.client_cert, "--key", self.ca.client_key]
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *tls, *auth,
                              *args], capture_output=True, env=env, timeout=STOP_TIMEOUT,
                             check=check)
        return out.stdout.decode("utf-8", "replace").strip()


# ---- a Redis Cluster of three masters ----

class ClusterNode(RedisServer):
    def __init__(self, workdir):
        super().__init__(workdir)
        self.bus_port = free_port()  # not port + 10000, which may be past 65535

    def command(self):
        return super().command() + ["--cluster-enabled", "yes", "--cluster-config-file",
                                    "nodes.conf", "--cluster-node-timeout", "5000",
                                    "--cluster-port", str(self.bus_port)]

    @property
    def node_id(self):
        return self.cli("CLUSTER", "MYID")


class RedisCluster:
    """Three redis-server --cluster-enabled joined by redis-cli --cluster
    create, no replicas; url names every node as a seed."""

    def __init__(self, workdir, size=3):
        self.nodes = [ClusterNode(workdir) for _ in range(size)]

    @property
    def url(self):
        return "redis://" + ",".join("127.0.0.1:%d" % n.port for n in self.nodes)

    def start(self):
        for node in self.nodes:
            node.start()
        self.nodes[0].cli("--cluster", "create",
                          *["127.0.0.1:%d" % n.port for n in self.nodes],
                          "--cluster-replicas", "0", "--cluster-yes")
        wait_for(self.settled, START_TIMEOUT, 0.1, "the cluster to agree on its slots")
        return self

    def settled(self):
        return all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.nodes) and \
            len({n.cli("CLUSTER", "SLOTS") for n in self.nodes}) == 1

    def stop(self):
        for node in self.nodes:
            node.stop()

    def flush(self):
        for node in self.nodes:
            node.cli("FLUSHALL")

    def slot(self, key):
        return int(self.nodes[0].cli("CLUSTER", "KEYSLOT", key))

    def owner(self, slot):
        """The node serving slot, as node 0 sees it."""
        for line in self.nodes[0].cli("CLUSTER", "NODES").splitlines():
            fields = line.split()
            for part in fields[8:]:
                first, _, last = part.partition("-")
                if part[0] != "[" and int(first) <= slot <= int(last or first):
                    port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                    return next(n for n in self.nodes if n.port == port)
        raise AssertionError("slot %d is served by no node" % slot)

    def keys(self):
        """Every key held by the cluster, and its node."""
        return {key: node for node in self.nodes
                for key in node.cli("--scan").splitlines() if key}

    def move_slot(self, slot, target):
        """Moves one slot and its keys to target as redis-cli --cluster
        reshard does (IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE), so a
        client meets ASK during the move and MOVED after it."""
        source = self.owner(slot)
        if source is target:
            return
        target.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", source.node_id)
        source.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", target.node_id)
        for _ in range(1000):
            keys = source.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "100").split()
            if not keys:
                break
            source.cli("MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys)
        # the target first, then the source, as redis-cli does: told first,
        # the source would send clients with MOVED to a target still
        # importing, which sends them back
        for node in [target, source] + [n for n in self.nodes if n not in (target, source)]:
            node.cli("CLUSTER", "SETSLOT", str(slot), "NODE", target.node_id)
        wait_for(self.settled, START_TIMEOUT, 0.1, "the cluster to agree on slot %d" % slot)

    def reshard(self, source, target, count):
        """redis-cli --cluster reshard: count slots from source to target."""
        self.nodes[0].cli("--cluster", "reshard", "127.0.0.1:%d" % self.nodes[0].port,
                          "--cluster-from", source.node_id, "--cluster-to", target.node_id,
                          "--cluster-slots", str(count), "--cluster-yes")
        wait_for(self.settled, START_TIMEOUT, 0.1, "the cluster to agree after a reshard")


# ---- servers that hang ----

class BlackHole:
    """Accepts every connection and never answers, nor closes: a cache
    server that hangs after the connect (or a TLS handshake that never
    starts). Stopped with stop()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while self.running:
            try:
                self.held.append(self.sock.accept()[0])
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.running = False
        self.thread.join(STOP_TIMEOUT)
        self.sock.close()
        for conn in self.held:
            conn.close()


class NeverConnects:
    """A listening socket that never accepts, its queue (backlog 0) filled
    by one idle connection of its own: Linux drops the SYN of every further
    connect, so a connect to it never completes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.3).close()
        except socket.timeout:
            return
        self.stop()
        raise AssertionError("a connect to a full listen queue completed")

    def stop(self):
        self.filler.close()
        self.sock.close()


class CacheFront:
    """A TCP relay on loopback in front of a real cache server, which can be
    told to hang the way a network or a failing host does: hang() holds
    every byte (connections stay open, nothing is answered), never_connect()
    resets the open connections and leaves a full listen queue, so a new
    connect never completes; resume() relays again. url() is PegaDMCache's
    value through it, for scheme "redis" or "memcache"."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lock = threading.Lock()
        self.conns = []
        self.holding = self.refusing = False
        self.filler = None
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, scheme):
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def _accept(self):
        while self.listener.fileno() >= 0:
            if self.refusing:
                time.sleep(0.02)
                continue
            try:
                client = self.listener.accept()[0]
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self.lock:
                self.conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.holding:  # the bytes wait, as in a stalled network
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        src.close()  # each socket is the source of one pump

    def hang(self):
        self.holding = True

    def _drop_connections(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for sock in conns:
            try:  # a reset, as from a host that rebooted
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                sock.close()
            except OSError:
                pass

    def never_connect(self):
        self.refusing = True
        time.sleep(0.1)  # the accepting thread has seen it
        self._drop_connections()
        self.listener.listen(0)  # a listening socket takes a new backlog
        try:
            self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        except socket.timeout:
            pass  # connects made meanwhile filled the queue already

    def resume(self):
        self.holding = False
        if self.refusing:
            if self.filler is not None:
                self.filler.close()
                self.filler = None
            self.listener.listen(128)
            self.refusing = False

    def stop(self):
        self.holding = False
        self.listener.close()
        if self.filler is not None:
            self.filler.close()
        self._drop_connections()
