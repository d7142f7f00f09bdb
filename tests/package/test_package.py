"""The Debian package, as an administrator meets it.

Built with dpkg-buildpackage from a clean copy of the tree; lintian finds
nothing; dpkg -i installs it; a2enmod pegadm enables it with socache_shmcb;
apachectl -t passes with the shipped pegadm.conf once a widget ID and a
secret are set; Debian's apache2, configured from the system's mods-enabled
files, answers the session endpoint against the DM emulator; dpkg --purge
leaves nothing behind.

Runs as root (dpkg -i). The tests of the installed package share one
installation and run in file order, the purge last. The system's apache2
configuration is left as it was found: the server the tests start has a
ServerRoot of its own, the configuration check adds its directives on the
command line, and the package is purged at the end whatever happens.
"""

import base64
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

# The DM emulator and its throwaway CA, started the way the integration
# tests start them (tests/conftest.py puts the harness package on the path).
from pegadm_harness import Emulator, http_request, load_ca_module  # noqa: E402

PACKAGE = "libapache2-mod-pegadm"
SOURCE = "mod-pegadm"
MODULE_FILE = "/usr/lib/apache2/modules/mod_pegadm.so"
MODS_AVAILABLE = "/etc/apache2/mods-available"
MODS_ENABLED = "/etc/apache2/mods-enabled"
MODULE_STATE = "/var/lib/apache2/module"
APACHE_BIN = "/usr/sbin/apache2"

WIDGET_ID = "3f5e9a1c-7b2d-4e8f-9a6b-1c2d3e4f5a6b"
WIDGET_SECRET = "package-test-secret-2a7f9c41e8b3d6"
USER, PASSWORD = "alice", "package test password"

BUILD_TIMEOUT = 900
START_TIMEOUT = 15


def run(args, timeout=120, check=True, **kwargs):
    """Runs a command; output (stdout and stderr together) in .stdout."""
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=timeout, **kwargs)
    if check:
        assert result.returncode == 0, "%s exited with %d:\n%s" % (
            " ".join(args), result.returncode, result.stdout[-6000:])
    return result


def public_dir(prefix):
    """mkdtemp is 0700; httpd's children (www-data) must traverse it."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)
    return path


def remove(path):
    if not os.environ.get("PEGADM_TEST_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


def project_version():
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt"), encoding="utf-8") as fh:
        match = re.search(r"^project\(mod_pegadm\s+VERSION\s+([0-9.]+)\b", fh.read(), re.M)
    assert match, "CMakeLists.txt has no project(mod_pegadm VERSION ...)"
    return match.group(1)


def command_table_directives():
    """Every directive name of the module's command table (AP_INIT_*)."""
    names = set()
    sources = glob.glob(os.path.join(REPO_ROOT, "*.c")) + glob.glob(
        os.path.join(REPO_ROOT, "src", "*.c"))
    for path in sources:
        with open(path, encoding="utf-8") as fh:
            names.update(re.findall(r'\bAP_INIT_[A-Z0-9_]+\(\s*"([A-Za-z]+)"', fh.read()))
    return names


def enabled(name):
    return os.path.lexists(os.path.join(MODS_ENABLED, name + ".load"))


def state_files(module):
    """apache2-maintscript-helper's record of who enabled or disabled it."""
    return sorted(glob.glob(os.path.join(MODULE_STATE, "*", module)))


def package_status():
    result = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PACKAGE], check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


# --------------------------------------------------------------------------
# the tree's own agreement: versions, the shipped configuration
# --------------------------------------------------------------------------

def test_changelog_version_is_the_project_version():
    version = run(["dpkg-parsechangelog", "-l", os.path.join(REPO_ROOT, "debian", "changelog"),
                   "-S", "Version"]).stdout.strip()
    assert version == project_version(), (
        "debian/changelog is at %s, CMakeLists.txt's project() at %s"
        % (version, project_version()))
    with open(os.path.join(REPO_ROOT, "CHANGES"), encoding="utf-8") as fh:
        newest = re.search(r"^Changes with mod_pegadm (\S+)$", fh.read(), re.M)
    assert newest and newest.group(1) == version, "CHANGES does not start at %s" % version


def test_shipped_pegadm_conf_shows_every_directive():
    directives = command_table_directives()
    assert len(directives) > 20, directives
    with open(os.path.join(REPO_ROOT, "conf", "pegadm.conf"), encoding="utf-8") as fh:
        text = fh.read()
    shown = set(re.findall(r"^\s*#\s*<?(PegaDM[A-Za-z]*)\b", text, re.M))
    assert directives - shown == set(), "not shown in conf/pegadm.conf"
    assert shown - directives == set(), "not directives of the module"
    active = [line for line in text.splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert active == ["<IfModule pegadm_module>", "</IfModule>"], active


# --------------------------------------------------------------------------
# the build
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built():
    """Source and binary packages built from a copy of the tree: the files
    git tracks or would track (uncommitted work included)."""
    version = project_version()
    listed = run(["git", "-C", REPO_ROOT, "ls-files", "-z", "-co", "--exclude-standard"])
    files = sorted(f for f in listed.stdout.split("\0") if f and
                   os.path.isfile(os.path.join(REPO_ROOT, f)))
    assert "debian/rules" in files
    out = public_dir("pegadm-deb-")
    tree = os.path.join(out, "%s-%s" % (SOURCE, version))
    for name in files:
        os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
        shutil.copy2(os.path.join(REPO_ROOT, name), os.path.join(tree, name))
    # The source package (lintian checks it too), made before the build
    # touches the tree.
    run(["dpkg-source", "-b", os.path.basename(tree)], cwd=out)
    start = time.monotonic()
    log = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, timeout=BUILD_TIMEOUT)
    arch = run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.strip()
    paths = {
        "out": out,
        "tree": tree,
        "files": files,
        "log": log.stdout,
        "seconds": time.monotonic() - start,
        "deb": os.path.join(out, "%s_%s_%s.deb" % (PACKAGE, version, arch)),
        "changes": os.path.join(out, "%s_%s_%s.changes" % (SOURCE, version, arch)),
        "dsc": os.path.join(out, "%s_%s.dsc" % (SOURCE, version)),
    }
    yield paths
    remove(out)


def test_the_build_leaves_only_ignored_files_in_the_tree(built):
    tree = built["tree"]
    after = set()
    for dirpath, _dirs, names in os.walk(tree):
        after.update(os.path.relpath(os.path.join(dirpath, n), tree) for n in names)
    made = sorted(after - set(built["files"]))
    assert made, "the build left nothing in the tree? (%s)" % tree
    ignored = run(["git", "-C", REPO_ROOT, "check-ignore", "--no-index", "--stdin"],
                  input="\n".join(made) + "\n", check=False).stdout.split("\n")
    assert sorted(set(made) - set(ignored)) == [], "build products .gitignore misses"
    # debian/rules clean takes the tree back to what was copied.
    run(["dpkg-buildpackage", "-T", "clean"], cwd=tree)
    cleaned = set()
    for dirpath, _dirs, names in os.walk(tree):
        cleaned.update(os.path.relpath(os.path.join(dirpath, n), tree) for n in names)
    assert sorted(cleaned ^ set(built["files"])) == []


def test_lintian_reports_no_error_and_no_warning(built):
    for path in ("deb", "changes", "dsc"):
        assert os.path.isfile(built[path]), "%s missing:\n%s" % (built[path], built["log"][-3000:])
    result = run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0",
                  built["changes"], built["deb"], built["dsc"]], timeout=600, check=False)
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert tags == [] and result.returncode == 0, result.stdout


def test_the_package_holds_the_module_and_its_a2enmod_files(built):
    listing = run(["dpkg-deb", "-c", built["deb"]]).stdout
    files = sorted(line.split()[-1].lstrip(".") for line in listing.splitlines()
                   if not line.startswith("d"))
    assert files == [
        "/etc/apache2/mods-available/pegadm.conf",
        "/etc/apache2/mods-available/pegadm.load",
        MODULE_FILE,
        "/usr/share/doc/%s/changelog.gz" % PACKAGE,
        "/usr/share/doc/%s/copyright" % PACKAGE,
    ], listing
    extracted = os.path.join(built["out"], "extracted")
    run(["dpkg-deb", "-R", built["deb"], extracted])
    for name in ("pegadm.load", "pegadm.conf"):
        with open(os.path.join(REPO_ROOT, "conf", name), encoding="utf-8") as repo, \
                open(extracted + MODS_AVAILABLE + "/" + name, encoding="utf-8") as shipped:
            assert shipped.read() == repo.read(), "%s is not conf/%s" % (name, name)
    with open(extracted + MODS_AVAILABLE + "/pegadm.load", encoding="utf-8") as fh:
        load = fh.read()
    assert re.search(r"^# Depends: socache_shmcb$", load, re.M)
    assert re.search(r"^LoadModule pegadm_module %s$" % re.escape(MODULE_FILE), load, re.M)
    # The maintainer scripts are dh_apache2's: apache2-maintscript-helper.
    for script in ("postinst", "prerm", "postrm"):
        with open(os.path.join(extracted, "DEBIAN", script), encoding="utf-8") as fh:
            text = fh.read()
        assert "apache2-maintscript-helper" in text and "apache2_invoke" in text, script
        assert not re.search(r"\ba2(en|dis)mod\b", text), script
    control = run(["dpkg-deb", "-f", built["deb"], "Depends"]).stdout
    assert "apache2-api-20120211" in control, control


# --------------------------------------------------------------------------
# installed
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(built):
    """dpkg -i of the package; purged afterwards, and socache_shmcb put
    back the way it was."""
    assert os.geteuid() == 0, "installing the package needs root"
    assert package_status() in ("", "un", "pn"), (
        "%s is installed already (%s); the test would remove it: dpkg --purge %s"
        % (PACKAGE, package_status(), PACKAGE))
    assert not os.path.lexists(MODULE_FILE), (
        "%s exists (installed by hand?); the package would replace it" % MODULE_FILE)
    shmcb_before = (enabled("socache_shmcb"), state_files("socache_shmcb"))
    try:
        result = run(["dpkg", "-i", built["deb"]], env=dict(os.environ,
                                                            DEBIAN_FRONTEND="noninteractive"))
        yield result.stdout
    finally:
        if package_status() not in ("", "un", "pn"):
            run(["dpkg", "--purge", PACKAGE], check=False)
        if (enabled("socache_shmcb"), state_files("socache_shmcb")) != shmcb_before \
                and not shmcb_before[0]:
            # Enabled by a2enmod as pegadm's dependency: disabled again
            # and its state forgotten, as before the test.
            run(["a2dismod", "-q", "-f", "-p", "socache_shmcb"], check=False)


def test_install_enables_the_module_and_a2enmod_enables_it_with_socache_shmcb(installed):
    assert package_status() == "ii"
    # dh_apache2's postinst enables it on installation, dependency included.
    assert enabled("pegadm") and enabled("socache_shmcb"), installed
    run(["a2dismod", "-q", "pegadm"])
    assert not enabled("pegadm")
    socache_by_package = state_files("socache_shmcb") == [
        os.path.join(MODULE_STATE, "enabled_by_maint", "socache_shmcb")]
    if socache_by_package:
        run(["a2dismod", "-q", "socache_shmcb"])
        assert not enabled("socache_shmcb")
    result = run(["a2enmod", "pegadm"])
    assert "Enabling module pegadm" in result.stdout, result.stdout
    assert "Considering dependency socache_shmcb for pegadm" in result.stdout, result.stdout
    if socache_by_package:
        assert "Enabling module socache_shmcb" in result.stdout, result.stdout
    for name in ("pegadm.load", "pegadm.conf", "socache_shmcb.load"):
        link = os.path.join(MODS_ENABLED, name)
        assert os.path.islink(link) and os.path.isfile(link), link
    assert os.path.realpath(os.path.join(MODS_ENABLED, "pegadm.load")) == \
        os.path.join(MODS_AVAILABLE, "pegadm.load")


@pytest.fixture(scope="module")
def secret_file():
    path = public_dir("pegadm-deb-secret-")
    yield write(os.path.join(path, "jwt-secret"), WIDGET_SECRET + "\n", 0o600)
    remove(path)


def settings(secret_file, service_url=None, ca_file=None, htpasswd=None, secret=True):
    """What an administrator adds: a widget ID and its secret, and the
    session endpoint behind the portal's authentication."""
    lines = ["PegaDMWidgetID %s" % WIDGET_ID]
    if secret:
        lines.append('PegaDMJWTSecretFile "%s"' % secret_file)
    if service_url:
        lines.append("PegaDMServiceURL %s" % service_url)
    if ca_file:
        lines.append('PegaDMCAFile "%s"' % ca_file)
    lines += [
        '<Location "/pegadm/session">',
        "    SetHandler pegadm-session",
        "    AuthType Basic",
        '    AuthName "Portal"',
        '    AuthUserFile "%s"' % (htpasswd or "/nonexistent/htpasswd"),
        "    Require valid-user",
        "</Location>",
    ]
    return "\n".join(lines) + "\n"


def apachectl(*args):
    return run(["apachectl"] + list(args), check=False)


def test_apachectl_passes_with_the_shipped_conf_once_a_widget_and_secret_are_set(
        installed, secret_file):
    run(["a2enmod", "-q", "pegadm"])
    modules = apachectl("-M")
    assert modules.returncode == 0, modules.stdout
    assert "pegadm_module (shared)" in modules.stdout, modules.stdout
    assert "socache_shmcb_module (shared)" in modules.stdout, modules.stdout
    # Enabled and not yet configured: the server's configuration still holds.
    plain = apachectl("-t")
    assert plain.returncode == 0 and "Syntax OK" in plain.stdout, plain.stdout

    conf_dir = os.path.dirname(secret_file)
    ready = write(os.path.join(conf_dir, "site.conf"), settings(secret_file))
    result = apachectl("-t", "-c", "Include %s" % ready)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stdout
    # The module reads those directives: the endpoint with no secret is refused.
    no_secret = write(os.path.join(conf_dir, "no-secret.conf"),
                      settings(secret_file, secret=False))
    refused = apachectl("-t", "-c", "Include %s" % no_secret)
    assert refused.returncode != 0 and "secret" in refused.stdout.lower(), refused.stdout


# --------------------------------------------------------------------------
# Debian's apache2 with the packaged module
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator():
    workdir = public_dir("pegadm-deb-dm-")
    ca = load_ca_module().make_ca(os.path.join(workdir, "ca"))
    emu = Emulator(workdir, ca, {WIDGET_ID: WIDGET_SECRET}).start()
    yield emu
    emu.stop()
    remove(workdir)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_conf(root, port, body):
    """Debian's layout: the system's mods-enabled files, then the site."""
    return """\
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
Define APACHE_RUN_DIR {root}/run
Define APACHE_LOCK_DIR {root}/run
Define APACHE_LOG_DIR {root}/logs
User www-data
Group www-data
PidFile "{root}/run/apache2.pid"
DefaultRuntimeDir "{root}/run"
ErrorLog "{root}/logs/error.log"
LogLevel info
Include /etc/apache2/mods-enabled/*.load
Include /etc/apache2/mods-enabled/*.conf
# What the session endpoint's Basic authentication needs, where a
# minimal system has not enabled it.
<IfModule !authn_core_module>
    LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
</IfModule>
<IfModule !authn_file_module>
    LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
</IfModule>
<IfModule !authz_user_module>
    LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
</IfModule>
<IfModule !auth_basic_module>
    LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
</IfModule>
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
    Require all granted
</Directory>
{body}
""".format(root=root, port=port, body=body)


def htpasswd_line(user, password):
    digest = base64.b64encode(hashlib.sha1(password.encode("utf-8")).digest()).decode("ascii")
    return "%s:{SHA}%s\n" % (user, digest)


def answers(port):
    try:
        return http_request(port, "GET", "/index.html", timeout=2).status == 200
    except OSError:
        return False


def test_debian_apache2_answers_the_session_endpoint_with_the_packaged_module(
        installed, secret_file, emulator):
    run(["a2enmod", "-q", "pegadm"])
    with open(os.path.join(MODS_ENABLED, "pegadm.load"), encoding="utf-8") as fh:
        assert "LoadModule pegadm_module %s" % MODULE_FILE in fh.read()
    root = public_dir("pegadm-deb-httpd-")
    proc = None
    try:
        for sub in ("run", "logs", "htdocs"):
            os.makedirs(os.path.join(root, sub), mode=0o755)
        write(os.path.join(root, "htdocs", "index.html"), "ok\n")
        htpasswd = write(os.path.join(root, "htpasswd"), htpasswd_line(USER, PASSWORD))
        port = free_port()
        conf = write(os.path.join(root, "apache2.conf"), server_conf(root, port, settings(
            secret_file, emulator.url, emulator.ca_file, htpasswd)))
        with open(os.path.join(root, "logs", "stdout.log"), "wb") as out:
            proc = subprocess.Popen([APACHE_BIN, "-f", conf, "-DFOREGROUND"], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(port):
            logs = ""
            for name in ("stdout.log", "error.log"):
                if os.path.exists(os.path.join(root, "logs", name)):
                    with open(os.path.join(root, "logs", name), encoding="utf-8",
                              errors="replace") as fh:
                        logs += fh.read()[-3000:]
            assert proc.poll() is None, "apache2 exited with %d:\n%s" % (proc.returncode, logs)
            assert time.monotonic() < deadline, "apache2 does not answer:\n" + logs
            time.sleep(0.1)

        first = http_request(port, "GET", "/pegadm/session", user=USER, password=PASSWORD)
        assert first.status == 200, first
        body = json.loads(first.body)
        assert body["widgetId"] == WIDGET_ID and body["sessionId"], body
        assert len(emulator.creates_for(USER)) == 1, emulator.state()
        # Cached in the shmcb cache socache_shmcb provides: the same session.
        again = http_request(port, "GET", "/pegadm/session", user=USER, password=PASSWORD)
        assert again.status == 200 and json.loads(again.body) == body, again
        assert len(emulator.creates_for(USER)) == 1, emulator.state()
        anonymous = http_request(port, "GET", "/pegadm/session")
        assert anonymous.status == 401, anonymous
        # The module that answered is the packaged one.
        with open("/proc/%d/maps" % proc.pid, encoding="utf-8") as fh:
            assert MODULE_FILE in fh.read()
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)
        remove(root)


# --------------------------------------------------------------------------
# purged
# --------------------------------------------------------------------------

def test_purge_removes_everything_it_installed(installed):
    owned = [path for path in run(["dpkg-query", "-L", PACKAGE]).stdout.splitlines()
             if path and not os.path.isdir(path)]
    assert MODULE_FILE in owned, owned
    run(["a2enmod", "-q", "pegadm"])
    assert enabled("pegadm")

    result = run(["dpkg", "--purge", PACKAGE])
    assert package_status() in ("", "un", "pn"), result.stdout
    left = [path for path in owned if os.path.lexists(path)]
    assert left == [], "left after dpkg --purge"
    for name in ("pegadm.load", "pegadm.conf"):
        for folder in (MODS_AVAILABLE, MODS_ENABLED):
            assert not os.path.lexists(os.path.join(folder, name)), (folder, name)
    assert state_files("pegadm") == [], "apache2-maintscript-helper state left"
    assert not os.path.exists("/usr/share/doc/%s" % PACKAGE)
    # The server's configuration holds without the module.
    check = apachectl("-t")
    assert check.returncode == 0 and "Syntax OK" in check.stdout, check.stdout
