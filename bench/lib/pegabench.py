"""What the benchmarks add to the test harness (tests/pegadm_harness, which
runs httpd, the DM emulator and the cache servers): many users and their
credentials, a benchmark site, wrk and a fill client, process memory and
CPU, comparisons, profiles and results.

Everything listens on 127.0.0.1 only, every wait is bounded, and every
process started here is stopped by whoever started it (the context managers
below), so an interrupted run leaves nothing behind.
"""

import argparse
import base64
import dbm.gnu
import hashlib
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))

import pegadm_harness as harness  # noqa: E402
from pegadm_harness import caches  # noqa: E402
from pegadm_harness import (APACHE_BIN, APACHE_MODULES, SESSION_PATH, WIDGET_ID,  # noqa: E402
                            WIDGET_SECRET, basic_auth_header, children_of)

MODULE_PATH = os.environ.get(
    "PEGADM_BENCH_MODULE", os.path.join(REPO_ROOT, "build", "mod_pegadm.so"))
RESULTS_DIR = os.environ.get("PEGADM_BENCH_RESULTS", os.path.join(BENCH_DIR, "results"))
LUA_SCRIPT = os.path.join(BENCH_DIR, "lua", "users.lua")

PASSWORD = "bench-password"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def log(*parts):
    print("[%s]" % time.strftime("%H:%M:%S"), *parts, flush=True)


# --------------------------------------------------------------------------
# users
# --------------------------------------------------------------------------

def user_name(i):
    return "customer%06d" % i


def sha_hash(password):
    """htpasswd's {SHA}: one SHA-1, so authentication costs the same few
    microseconds for httpd and for the Node.js baseline."""
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def basic_header(name, password=PASSWORD):
    return basic_auth_header(name, password)


class Users:
    """`count` customers in the three forms the servers and clients read:
    a GDBM file for mod_authn_dbm, a name:{SHA} list for the Node.js server,
    and one Authorization header per line for wrk. Subsets of the first n
    users get their own header files (headers(n))."""

    def __init__(self, workdir, count, prefix=""):
        self.dir = os.path.join(workdir, "users-%s%d" % (prefix, count))
        self.count = count
        self.prefix = prefix
        self.dbm_path = os.path.join(self.dir, "users.gdbm")
        self.list_path = os.path.join(self.dir, "users.txt")
        if not os.path.exists(self.list_path):
            self._write()

    def name(self, i):
        return self.prefix + user_name(i)

    def names(self, n=None):
        return [self.name(i) for i in range(n or self.count)]

    def _write(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        hashed = sha_hash(PASSWORD)
        db = dbm.gnu.open(self.dbm_path, "nf", 0o644)
        with open(self.list_path + ".tmp", "w") as out:
            for name in self.names():
                db[name.encode()] = hashed.encode()
                out.write("%s:%s\n" % (name, hashed))
        db.sync()
        db.close()
        os.chmod(self.dbm_path, 0o644)
        os.rename(self.list_path + ".tmp", self.list_path)

    def headers(self, n=None, shift=0):
        """A file of the Authorization headers of the first n users, starting
        at user `shift` and wrapping round."""
        n = n or self.count
        path = os.path.join(self.dir, "headers-%d-%d.txt" % (n, shift))
        if not os.path.exists(path):
            with open(path, "w") as out:
                for i in range(n):
                    out.write(basic_header(self.name((i + shift) % n)) + "\n")
        return path


# --------------------------------------------------------------------------
# processes and memory
# --------------------------------------------------------------------------

def _status_kb(pid, key, filename="status"):
    try:
        with open("/proc/%d/%s" % (pid, filename)) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pids):
    """Sum of resident set sizes: shared pages count once per process, the
    way `ps` and most dashboards add them up."""
    return sum(_status_kb(pid, "VmRSS") for pid in pids)


def private_kb(pids):
    """Sum of the memory each process holds alone (heap, stacks): what a leak
    grows. Shared cache pages, which fill up as customers arrive and are
    bounded by the cache's size, are not in it."""
    return sum(_status_kb(pid, "Private_Clean", "smaps_rollup")
               + _status_kb(pid, "Private_Dirty", "smaps_rollup") for pid in pids)


def pss_kb(pids):
    """Sum of proportional set sizes: shared pages split among their users,
    so the sum is what the processes really occupy."""
    return sum(_status_kb(pid, "Pss", "smaps_rollup") for pid in pids)


def cpu_seconds(pids):
    """User plus system CPU time consumed so far by the processes (all their
    threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# the DM emulator
# --------------------------------------------------------------------------

def start_emulator(workdir):
    """The tests' emulator, quiet: a request log line per call would cost the
    emulator more than the module."""
    ca = harness.load_ca_module().make_ca(os.path.join(workdir, "ca"))
    return harness.Emulator(workdir, ca, {WIDGET_ID: WIDGET_SECRET}, quiet=True).start()


# --------------------------------------------------------------------------
# httpd
# --------------------------------------------------------------------------

BASE_MODULES = ("authn_core", "authn_dbm", "authn_file", "authn_socache", "auth_basic", "authz_core",
                "authz_user", "mime", "include", "dir", "socache_shmcb",
                "socache_memcache", "socache_redis")

# Two children that never come and go during a run, so the memory figures
# compare like with like. The event MPM may hand all of a run's connections
# to one child, and when every thread of a child is busy it closes that
# child's idle keep-alive connections (clients then see them drop): so a
# child has as many threads as the biggest run has connections (128).
EVENT_TUNING = """\
StartServers 2
ServerLimit 4
ThreadLimit 128
ThreadsPerChild 128
MaxRequestWorkers 512
MinSpareThreads 32
MaxSpareThreads 512
MaxConnectionsPerChild 0
"""
# The worker MPM reads the same directives: a thread per connection, idle
# keep-alive connections included.
# Prefork: a process per connection, as many started as the biggest run of
# simultaneous first requests holds connections open (bench/two_nodes.py),
# and spare bounds those already satisfy, so none come and go.
PREFORK_TUNING = """\
StartServers 24
MinSpareServers 4
MaxSpareServers 64
ServerLimit 64
MaxRequestWorkers 64
MaxConnectionsPerChild 0
"""
MPM_TUNING = {"event": EVENT_TUNING, "worker": EVENT_TUNING, "prefork": PREFORK_TUNING}

# Basic authentication as cheap as it gets and identical for every
# location compared: a GDBM user database (one hashed lookup, not a scan of
# a flat file of 100,000 lines) behind mod_authn_socache, checking a {SHA}
# hash (one SHA-1, not bcrypt). mod_authn_socache's default shmcb holds only
# a few hundred users, and every miss opens the GDBM file (an mmap and an
# munmap, a TLB shootdown across all threads): AUTHN_CACHE holds them all.
AUTHN_CACHE = 'AuthnCacheSOCache "shmcb:{root}/run/authn-cache(67108864)"'
AUTH_LINES = """\
    AuthType Basic
    AuthName "bench"
    AuthBasicProvider socache dbm
    AuthnCacheProvideFor dbm
    AuthDBMType GDBM
    AuthDBMUserFile "{users_db}"
    Require valid-user
"""

SSI_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Portal</title></head>
<body>
<main>
<h1>Your accounts</h1>
<p>Signed in as <strong><!--#echo var="REMOTE_USER" --></strong>.</p>
<table>
<tr><th>Account</th><th>Balance</th></tr>
<tr><td>Current account</td><td>1,234.56</td></tr>
<tr><td>Savings account</td><td>9,876.54</td></tr>
<tr><td>Credit card</td><td>-321.00</td></tr>
</table>
<p>{filler}</p>
</main>
<script>window.PegaUnifiedChatWidget = window.PegaUnifiedChatWidget || {{}};
window.pegadmSession = "<!--#echo var="PEGADM_SESSION_ID" -->";</script>
<script src="/pegadm/bootstrap.js"></script>
</body>
</html>
""".format(filler="Lorem ipsum dolor sit amet. " * 40)


def pegadm_server_lines(emulator, cache=None, extra=()):
    lines = ["PegaDMWidgetID %s" % WIDGET_ID,
             'PegaDMJWTSecret "%s"' % WIDGET_SECRET,
             "PegaDMServiceURL %s" % emulator.url,
             'PegaDMCAFile "%s"' % emulator.ca_file]
    if cache:
        lines.append("PegaDMCache %s" % cache)
    return "\n".join(lines + list(extra)) + "\n"


def standard_locations(users_db):
    """The session endpoint, a static file of the same size, an eager SSI
    page and the same page with the module off: all behind the same
    authentication."""
    auth = AUTH_LINES.format(users_db=users_db)
    return ("<Location /pegadm/session>\n    SetHandler pegadm-session\n%s</Location>\n"
            "<Location /pegadm/bootstrap.js>\n    SetHandler pegadm-bootstrap\n</Location>\n"
            "<Location /static>\n%s</Location>\n"
            "<Location /eager>\n    PegaDM On\n%s</Location>\n"
            "<Location /plain>\n    PegaDM Off\n%s</Location>\n") % (auth, auth, auth, auth)


class Httpd(harness.Httpd):
    """The tests' httpd (event MPM unless told otherwise) serving the
    benchmark site: its own ServerRoot, run in the foreground in its own
    process group, and up once two children run."""

    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT

    def __init__(self, workdir, name, body, static_json=b"{}", loglevel="warn", mpm="event",
                 env=None, run_as_www_data=True, load_pegadm=True, modules=()):
        super().__init__(workdir, body, mpm=mpm, loglevel=loglevel, env=env, name=name,
                         load_pegadm=load_pegadm)
        self.run_as_www_data = run_as_www_data
        self.modules = tuple(modules)
        self.static_json = static_json
        self.port = harness.free_port()

    def write_config(self):
        """The configuration and the documents (start() writes them too)."""
        for sub in ("conf", "run", "logs", "htdocs/static", "htdocs/eager", "htdocs/plain"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            os.chmod(os.path.join(self.root, sub), 0o755)
        os.makedirs(os.path.join(self.root, "cores"), exist_ok=True)
        os.chmod(os.path.join(self.root, "cores"), 0o1777)  # see harness.Httpd.crashes()
        harness.write_file(os.path.join(self.root, "htdocs", "index.html"), "ok\n")
        harness.write_file(os.path.join(self.root, "htdocs", "static", "session.json"),
                           self.static_json)
        for sub in ("eager", "plain"):
            harness.write_file(os.path.join(self.root, "htdocs", sub, "page.shtml"), SSI_PAGE)
        modules = "\n".join("LoadModule %s_module %s/mod_%s.so" % (m, APACHE_MODULES, m)
                            for m in ("mpm_" + self.mpm,) + BASE_MODULES + self.modules)
        if self.load_pegadm:
            modules += '\nLoadModule pegadm_module "%s"' % MODULE_PATH
        run_as = ("User www-data\nGroup www-data\n"
                  if os.geteuid() == 0 and self.run_as_www_data else "")
        harness.write_file(self.conf_path, """\
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
{modules}
{run_as}CoreDumpDirectory "{root}/cores"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
ErrorLog "{root}/logs/error.log"
LogLevel {loglevel}
TypesConfig /etc/mime.types
Timeout 30
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
{tuning}
{document_root}{authn_cache}
<Directory "{root}/htdocs">
    Options +Includes
    AddType text/html .shtml
    AddOutputFilter INCLUDES .shtml
    Require all granted
</Directory>
{body}
""".format(root=self.root, port=self.port, modules=modules,
           run_as=run_as, loglevel=self.loglevel, tuning=MPM_TUNING[self.mpm],
           body=self.conf_body, authn_cache=AUTHN_CACHE.format(root=self.root),
           document_root=harness.DOCUMENT_ROOT.format(root=self.root)))

    def set_static_json(self, data):
        """Replaces the static JSON file (httpd serves what is there now)."""
        self.static_json = data
        harness.write_file(os.path.join(self.root, "htdocs", "static", "session.json"), data)

    def _answers(self):
        return super()._answers() and len(self.children()) >= 2

    def graceful(self):
        """`apache2 -k graceful`, the way an administrator reloads (without
        waiting for the new generation, unlike harness.graceful_restart)."""
        subprocess.run([APACHE_BIN, "-f", self.conf_path, "-k", "graceful"], check=True,
                       timeout=30, env=harness.apache_env(self.env))

    def children(self):
        return sorted(children_of(self.proc.pid)) if self.proc else []

    def pids(self):
        return [self.proc.pid] + self.children()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, user, timeout=30):
        return harness.http_request(self.port, "GET", path, user=user, password=PASSWORD,
                                    timeout=timeout)


def session_body_size(server, user):
    """Bytes of a session endpoint answer, for the same-size static file."""
    resp = server.get(SESSION_PATH, user)
    if resp.status != 200:
        raise RuntimeError("session endpoint answered %r" % resp)
    return len(resp.body)


def same_size_json(size):
    """A static JSON document of exactly `size` bytes shaped like the answer."""
    template = '{"sessionId":"%s","widgetId":"' + WIDGET_ID + '"}\n'
    room = size - len(template % "")
    if room < 1:
        raise ValueError("an answer of %d bytes is too short to imitate" % size)
    return (template % ("0" * room)).encode()


# --------------------------------------------------------------------------
# cache servers
# --------------------------------------------------------------------------

class Memcached(caches.Memcached):
    """memcached with room for every session of the biggest run."""

    memory_mb = 256


def cache_server(kind, workdir):
    """The harness's redis-server ("redis") or memcached ("memcache") on a
    free loopback port, without persistence; start() it."""
    return {"redis": caches.RedisServer, "memcache": Memcached}[kind](workdir)


# --------------------------------------------------------------------------
# load generation
# --------------------------------------------------------------------------

class Wrk:
    """wrk with bench/lua/users.lua: Basic credentials from a header file,
    either rotating (mode "rotate") or each used once (mode "once"); the
    Lua script prints a JSON summary that run() returns."""

    def __init__(self, url, headers_file, seconds, connections, threads=2, mode="rotate",
                 statuses=False):
        self.args = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds,
                     "--timeout", "30s", "-s", LUA_SCRIPT, url, "--",
                     headers_file, mode, str(threads)]
        self.env = dict(os.environ, PEGABENCH_STATUS="1" if statuses else "0")
        self.seconds = seconds
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait(self):
        try:
            out, _ = self.proc.communicate(timeout=self.seconds + 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise RuntimeError("wrk overran its duration")
        text = out.decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("PEGABENCH "):
                return json.loads(line[len("PEGABENCH "):])
        raise RuntimeError("wrk printed no summary:\n" + text)

    def run(self):
        return self.start().wait()


def fill(port, path, names, connections=32, time_limit=900.0, headers_of=None):
    """Request `path` once for each name over keep-alive connections, with
    the name's Basic credentials or the headers headers_of(name) gives;
    returns {"status": {code: count}, "seconds": s, "done": n}. Stops at
    time_limit."""
    headers_of = headers_of or (lambda name: {"Authorization": basic_header(name)})
    lock = threading.Lock()
    todo = iter(names)
    statuses = {}
    deadline = time.monotonic() + time_limit
    done = [0]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                name = next(todo, None)
            if name is None:
                break
            try:
                conn.request("GET", path, headers=headers_of(name))
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = "error"
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                done[0] += 1
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 70)
    return {"status": {str(k): v for k, v in statuses.items()},
            "seconds": round(time.monotonic() - started, 1), "done": done[0]}


# --------------------------------------------------------------------------
# the machine and the results
# --------------------------------------------------------------------------

def loadavg():
    with open("/proc/loadavg") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def wait_until_quiet(limit=1.5, max_wait=60.0):
    """Wait (bounded) for the 1-minute load to fall under `limit`: other work
    on the machine would disturb the figures. Returns the load seen. Quick
    runs (--quick) measure nothing and do not wait."""
    deadline = time.monotonic() + (0 if QUICK else max_wait)
    while loadavg()[0] > limit and time.monotonic() < deadline:
        time.sleep(5)
    return loadavg()


def machine():
    def first(path, key):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    def run(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except OSError:
            return None

    with open("/etc/debian_version") as fh:
        debian = fh.read().strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory_mib": int(first("/proc/meminfo", "MemTotal").split()[0]) // 1024,
        "kernel": platform.release(),
        "debian": debian,
        "httpd": run(APACHE_BIN, "-v").splitlines()[0].split(":", 1)[1].strip(),
        "curl": " ".join(w for i, w in enumerate(run("curl", "--version").split())
                         if i < 2 or w.startswith(("libcurl/", "OpenSSL/"))),
        "wrk": run("dpkg-query", "-W", "-f=${Version}", "wrk"),
        "node": run("node", "--version"),
        "redis": run("redis-server", "--version").split(" sha=")[0],
        "memcached": run("memcached", "-V"),
    }


def save_result(name, result):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    result = dict(result, figure=name, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(os.path.join(RESULTS_DIR, name + ".json"), "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
        fh.write("\n")
    log("saved", os.path.relpath(os.path.join(RESULTS_DIR, name + ".json"), REPO_ROOT))


class Workdir:
    """A 0755 temporary directory (httpd children run as www-data), removed
    afterwards unless PEGADM_BENCH_KEEP is set."""

    def __enter__(self):
        self.path = harness.make_public_dir(prefix="pegadm-bench-")
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("PEGADM_BENCH_KEEP"):
            log("kept", self.path)
        else:
            harness.remove_tree(self.path)


def require_module():
    if not os.path.exists(MODULE_PATH):
        sys.exit("%s is missing: build the module first (or set PEGADM_BENCH_MODULE)"
                 % MODULE_PATH)


# The module before its own cache clients: shared caches through httpd's
# mod_socache_redis / mod_socache_memcache (APR-util's clients).
OLD_COMMIT = "df6de54"
OLD_BUILD = os.path.join(REPO_ROOT, "build-old-" + OLD_COMMIT)


def old_module():
    """PEGADM_BENCH_OLD_MODULE, or the module built from OLD_COMMIT: the
    commit's tree (git archive) built with cmake in build-old-<commit>/,
    once."""
    given = os.environ.get("PEGADM_BENCH_OLD_MODULE")
    if given:
        return given
    built = os.path.join(OLD_BUILD, "build", "mod_pegadm.so")
    if not os.path.exists(built):
        log("building the module of", OLD_COMMIT, "in", os.path.relpath(OLD_BUILD, REPO_ROOT))
        os.makedirs(OLD_BUILD, exist_ok=True)
        archive = subprocess.Popen(["git", "-C", REPO_ROOT, "archive", OLD_COMMIT],
                                   stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", OLD_BUILD], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            sys.exit("git archive %s failed" % OLD_COMMIT)
        subprocess.run(["cmake", "-S", OLD_BUILD, "-B", os.path.join(OLD_BUILD, "build"),
                        "-DPEGADM_BUILD_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", os.path.join(OLD_BUILD, "build"), "--target",
                        "mod_pegadm"], check=True, stdout=subprocess.DEVNULL)
    return built


def ratio(a, b):
    return round(a / b, 3) if b else None


# --------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------

def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def spread(values):
    """(max - min) / median: how far repeated runs of one variant disagree."""
    return round((max(values) - min(values)) / median(values), 3) if values else None


def interleaved(urls, headers_file, rounds, seconds, connections, threads=2, warmup=3,
                server=None):
    """Runs each variant of `urls` ({name: url}) `rounds` times in ABBA order,
    so a slow drift of the machine (other work starting or stopping) weighs
    on every variant alike. Returns {name: {"rps", "p50_us", "p99_us",
    "runs": [...], "spread"}}: requests over time summed across the runs;
    with `server` also "cpu_us", the CPU time its processes spent per
    request, which other work on the machine disturbs far less than req/s."""
    names = list(urls)
    for name in names:
        Wrk(urls[name], headers_file, warmup, connections, threads).run()
    runs = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            cpu = cpu_seconds(server.pids()) if server else 0
            res = Wrk(urls[name], headers_file, seconds, connections, threads).run()
            res["cpu_s"] = cpu_seconds(server.pids()) - cpu if server else 0
            bad = sum(res["errors"].values())
            if bad:
                raise RuntimeError("%s: %d errors in %r" % (name, bad, res["errors"]))
            runs[name].append(res)
            log("  %-8s %9.0f req/s  p50 %6.0f us  p99 %6.0f us  %5.1f us CPU/req" % (
                name, float(res["rps"]), float(res["percentiles_us"]["50"]),
                float(res["percentiles_us"]["99"]), 1e6 * res["cpu_s"] / int(res["requests"])))
    out = {}
    for name in names:
        rs = runs[name]
        total = sum(int(r["requests"]) for r in rs)
        seconds_total = sum(int(r["duration_us"]) for r in rs) / 1e6
        out[name] = {
            "rps": round(total / seconds_total, 1),
            "p50_us": median([float(r["percentiles_us"]["50"]) for r in rs]),
            "p99_us": median([float(r["percentiles_us"]["99"]) for r in rs]),
            "runs_rps": [float(r["rps"]) for r in rs],
            "cpu_us": round(1e6 * sum(r["cpu_s"] for r in rs) / total, 1) if server else None,
            "spread": spread([float(r["rps"]) for r in rs]),
        }
    return out


WARM_PASSES = 12


def warm(url, headers_file, users, connections, passes=WARM_PASSES, time_limit=900.0):
    """Loads `url` rotating over all `users` until the requests add up to
    `passes` per user, so that each child's local cache has seen about every
    customer (a request reaches either of two children: a customer is missing
    from a child after 12 passes with odds of about 1 in 4,000) and the
    figure measures the steady state, not first reads. Returns what it did."""
    started = time.monotonic()
    done = 0
    while done < passes * users and time.monotonic() - started < time_limit:
        res = Wrk(url, headers_file, 10, connections).run()
        done += int(res["requests"])
    seconds = round(time.monotonic() - started, 1)
    log("warmed %s: %d requests in %.0f s (%.1f per customer)" % (url, done, seconds,
                                                                  done / users))
    return {"requests": done, "seconds": seconds, "per_customer": round(done / users, 1)}


def least_disturbed(attempt, tries=3, max_spread=0.10):
    """Repeats attempt() (bounded) while its runs disagree by more than
    max_spread, which on a shared machine means other work interfered.
    Returns (the attempt whose runs agreed best, its worst spread, tries)."""
    best = None
    for n in range(1, tries + 1):
        result = attempt()
        worst = max(v["spread"] for v in result.values())
        if best is None or worst < best[1]:
            best = (result, worst)
        if worst <= max_spread:
            break
        log("runs disagree by %.0f%%: other load on the machine? repeating" % (100 * worst))
    return best[0], best[1], n


# --------------------------------------------------------------------------
# where the time goes (perf, when the machine allows it)
# --------------------------------------------------------------------------

MODULE_FRAMES = ("pegadm_", "send_json", "send_session", "store_")
MODULE_DSO = os.path.basename(MODULE_PATH)


def _stacks(perf_script_text):
    """perf script output as lists of (function, object file) frames,
    innermost first."""
    stacks, current = [], []
    for line in perf_script_text.splitlines():
        if not line.strip():
            if current:
                stacks.append(current)
            current = []
        elif line[0] in "\t ":
            parts = line.split()
            if len(parts) >= 2:
                dso = parts[-1].strip("()") if len(parts) >= 3 else ""
                current.append((parts[1].split("+")[0], os.path.basename(dso)))
        else:
            current = []
    if current:
        stacks.append(current)
    return stacks


def _in_handler(stack):
    return any(name == "pegadm_handler" for name, _ in stack)


def _in_module(stack):
    """Any frame of the module: its hooks (eager mode's fixup, the logout
    header parser, filters) as well as its handler."""
    return any(dso == MODULE_DSO for _, dso in stack)


def _module_frame(stack):
    """Index of the innermost frame of the module's own code, or None."""
    for i, (name, dso) in enumerate(stack):
        if dso == MODULE_DSO or name.startswith(MODULE_FRAMES):
            return i
    return None


def profile_module(server, url, headers_file, connections, seconds=4, freq=999, scope="handler"):
    """Samples the children with perf while wrk loads `url`: the CPU time per
    request spent under the module (scope "handler": its handler; "module":
    any of its hooks, for eager pages), and what it goes to (the function
    the module called; "entries": the hook of the module the samples are
    under). None when perf is missing or not allowed."""
    if not shutil.which("perf"):
        return None
    data = os.path.join(tempfile.mkdtemp(prefix="pegadm-perf-"), "perf.data")
    run = Wrk(url, headers_file, seconds + 3, connections).start()
    time.sleep(1.5)
    rec = subprocess.run(["perf", "record", "-q", "-F", str(freq), "--call-graph", "dwarf,16384",
                          "-o", data, "-p", ",".join(str(p) for p in server.children()),
                          "--", "sleep", str(seconds)], capture_output=True, text=True)
    res = run.wait()
    try:
        if rec.returncode != 0:
            log("perf record failed, no profile:", rec.stderr.strip()[-200:])
            return None
        text = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True,
                              timeout=600).stdout
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)
    stacks = _stacks(text)
    if not stacks:
        log("perf recorded no samples, no profile:", rec.stderr.strip()[-200:])
        return None
    inside = [s for s in stacks if (_in_handler(s) if scope == "handler" else _in_module(s))]
    callees, entries = {}, {}
    for stack in inside:
        i = _module_frame(stack)
        if i is not None:
            key = "%s -> %s" % (stack[i][0], stack[i - 1][0] if i else "(itself)")
            callees[key] = callees.get(key, 0) + 1
        outer = [name for name, dso in stack if dso == MODULE_DSO]
        if outer:
            entries[outer[-1]] = entries.get(outer[-1], 0) + 1
    requests = float(res["rps"]) * seconds
    us = lambda samples: round(samples / freq * 1e6 / requests, 2)
    ranked = lambda counts, n: [{"call": k, "us_per_request": us(v), "share_of_handler":
                                 round(v / len(inside), 3)}
                                for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]
    return {"scope": scope, "samples": len(stacks), "in_handler": len(inside),
            "handler_share": round(len(inside) / len(stacks), 3) if stacks else None,
            "handler_us_per_request": us(len(inside)),
            "all_us_per_request": us(len(stacks)),
            "top": ranked(callees, 12), "entries": ranked(entries, 6)}


QUICK = False


def cli(description):
    """Common options of the figure scripts."""
    global QUICK
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="short runs to check the script works (figures not comparable)")
    args = parser.parse_args()
    QUICK = args.quick
    return args


if __name__ == "__main__":
    # bench/run-all records the machine the figures come from
    save_result("machine", dict(machine(), load=loadavg()))
