"""Real httpd instances: the server root and httpd.conf a test runs with
(render_httpd_conf), the Httpd process (start, stop, logs, crashes),
`apache2 -t` (config_test) and `apache2 -k graceful` (graceful_restart)."""

import base64
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import time

from .assertions import pegadm_warnings
from .client import http_request
from .sanitizers import sanitizer_env
from .settings import (APACHE_BIN, APACHE_MODULES, MODULE_PATH, PASSWORD, START_TIMEOUT,
                       STOP_TIMEOUT)
from .util import (children_of, free_port, make_public_dir, stop_process, to_bytes, wait_for,
                   write_file)


# Modules every test server loads; unixd, log_config, so are built in on
# Debian (apache2 -l).
BASE_MODULES = (
    "authz_core", "authz_host", "authz_user", "authn_core", "authn_file",
    "auth_basic", "mime", "include", "cgid", "env", "headers", "setenvif",
    "alias", "dir", "socache_shmcb", "proxy", "proxy_http",
)
MPMS = ("event", "worker", "prefork")


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


# The document root under `root`, and nothing outside it.
DOCUMENT_ROOT = """\
DocumentRoot "{root}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
"""


def write_conf(path, text):
    """Writes a generated httpd.conf readable by its owner only: it holds
    the test widget's secret inline, and httpd warns (PEGADM701) about an
    inline secret in a file others can read."""
    return write_file(path, text, 0o600)


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
LogFormat "%h %u %t \\"%r\\" %>s %b" pegadm
CustomLog "{root}/logs/access.log" pegadm
TypesConfig /etc/mime.types
Timeout 20
KeepAlive On
{tuning}
{document_root}<Directory "{root}/htdocs">
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
           run_as=run_as, loglevel=loglevel, tuning=MPM_TUNING[mpm], body=body,
           document_root=DOCUMENT_ROOT.format(root=root))


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


def limited_address_space(size):
    """preexec_fn: allow_core_dumps, and at most `size` bytes of address
    space for httpd and its children: a test's way to make a large
    allocation (shared memory) fail while everything else fits."""
    def preexec():
        allow_core_dumps()
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    return preexec


def backtrace(core_path):
    """All threads' backtraces from a core, or a note why there are none."""
    if not shutil.which("gdb"):
        return "(gdb not installed: no backtrace)"
    proc = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "thread apply all bt", APACHE_BIN, core_path],
        capture_output=True, timeout=60)
    return proc.stdout.decode("utf-8", "replace")[-6000:]


def assert_quiet_start(server, expected=()):
    """Fails, stopping the server, if it logged a warn-level (or worse)
    PEGADM message as it started, but for the numbers in `expected`: the
    test servers' defaults draw none, so one that comes is news."""
    warned = pegadm_warnings(server.error_log(), expected)
    if warned:
        server.stop()
        raise AssertionError("httpd warned as it started (a test that means it names the "
                             "numbers in startup_warnings):\n" + "\n".join(warned))


class Httpd:
    """One httpd instance with its own ServerRoot, logs and port."""

    def __init__(self, workdir, conf="", users=("alice", "bob"), mpm="event",
                 loglevel="info", env=None, load_pegadm=True, name=None, address_space=None):
        self.root = make_public_dir(workdir, "httpd-%s-" % name if name else "httpd-")
        self.conf_body = conf
        self.users = users
        self.mpm = mpm
        self.loglevel = loglevel
        self.env = env or {}
        self.load_pegadm = load_pegadm
        self.address_space = address_space  # bytes (RLIMIT_AS); None: no limit
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
        write_conf(self.conf_path, text)

    def start(self):
        """Start in the foreground (its own process group) and wait until it
        answers; on failure the assertion carries the error log."""
        self.write_config()
        env = apache_env(self.env)
        with open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=(limited_address_space(self.address_space)
                            if self.address_space else allow_core_dumps))
        try:
            wait_for(self._answers, self.start_timeout, 0.1, "httpd to answer")
        except (TimeoutError, RuntimeError) as err:
            self.stop()
            raise AssertionError("httpd did not start (%s)\n%s" % (err, self.logs()))
        return self

    # A subclass may run httpd differently (e.g. under valgrind, -X).
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT

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
            stop_process(self.proc, group=True, timeout=self.stop_timeout)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _children(self):
        """PIDs whose parent is this httpd."""
        return children_of(self.proc.pid)

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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


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
    path = write_conf(os.path.join(root, "conf", "httpd.conf"), text)
    run_env = apache_env(env)
    proc = subprocess.run([APACHE_BIN, "-t", "-f", path], capture_output=True,
                          env=run_env, timeout=30)
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return ConfigTestResult(proc.returncode, output, path, text)


def apache_env(extra=None):
    """The environment of every apache2 the tests run."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    env.update(sanitizer_env())
    env.update(extra or {})
    return env


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
