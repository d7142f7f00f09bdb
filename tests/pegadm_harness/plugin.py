"""The pytest plugin of the harness: its fixtures, for the integration
tests, the memcheck run and whatever else loads it (tests/conftest.py
does, with `pytest_plugins`).

    workdir        session: a 0755 temp directory, removed at the end
                   (kept when PEGADM_TEST_KEEP is set)
    ca             session: {"ca", "ca_key", "cert", "key"} paths (throwaway CA;
                   the server certificate is valid for 30 days)
    emulator       session: the running emulator.Emulator (HTTPS, test widgets)
    dm             function: the emulator, reset before the test and after it
    echo_backend   session: backends.EchoBackend on 127.0.0.1 (plain HTTP)
    closed_port    session: a loopback port that refuses connections
    memcached      function: a fresh caches.FakeMemcached on 127.0.0.1
    cache_server   function: a real cache server, started; the test runs once
                   for each kind of caches.KINDS (redis-server, memcached)
    cache_ca       session: caches.CacheCA, the TLS cache servers' throwaway CA
    connect_proxy  function: a backends.ConnectProxy (HTTP CONNECT to loopback)
    httpd_factory  function: start(conf="", users=..., mpm=..., loglevel=...,
                   env=..., load_pegadm=True, startup_warnings=()) -> httpd.Httpd,
                   stopped after the test; a warn-level PEGADM message as it
                   starts (but for the numbers in startup_warnings) fails the
                   start, a child crash seen in its error log fails the test
    module_httpd   function: like httpd_factory but first checks the module
                   was built
    (autouse)      with PEGADM_TEST_SANITIZER_LOGS set, a test during which
                   httpd wrote a sanitizer report fails
    config_test    function: config_test(conf_text, **kw) -> httpd.ConfigTestResult
    plain_emulator session: the emulator over plain HTTP (for the browser)
    plain_dm       function: plain_emulator, reset before the test and after it
    chromium       function: a headless browser.Chromium, fresh profile
    demo_portal    function: the demo portal (demo/) against plain_dm, started
"""

import os

import pytest

from .backends import ClosedPort, ConnectProxy, EchoBackend
from .caches import KINDS as CACHE_KINDS
from .caches import CacheCA, FakeMemcached
from .emulator import Emulator, load_ca_module
from .httpd import Httpd, assert_quiet_start
from .httpd import config_test as run_config_test
from .sanitizers import SANITIZER_LOGS, sanitizer_reports
from .settings import (MODULE_PATH, OTHER_WIDGET_ID, OTHER_WIDGET_SECRET, REPO_ROOT, WIDGET_ID,
                       WIDGET_SECRET)
from .util import make_public_dir, remove_tree


@pytest.fixture(scope="session")
def workdir():
    path = make_public_dir()
    yield path
    if not os.environ.get("PEGADM_TEST_KEEP"):
        remove_tree(path)


@pytest.fixture(scope="session")
def ca(workdir):
    # the emulator's certificate outlives PegaDMCertificateWarnDays' default
    # (14): a test server starts without the preflight's PEGADM632
    return load_ca_module().make_ca(os.path.join(workdir, "ca"), server_days=30)


@pytest.fixture(scope="session")
def emulator(workdir, ca):
    emu = Emulator(workdir, ca, {
        WIDGET_ID: WIDGET_SECRET,
        OTHER_WIDGET_ID: OTHER_WIDGET_SECRET,
    }).start()
    yield emu
    emu.stop()


def reset_around(emulator):
    """Yields the emulator with a clean record and fault mode 'ok', and
    resets it again afterwards."""
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def dm(emulator):
    """The emulator with a clean record and fault mode 'ok'."""
    yield from reset_around(emulator)


@pytest.fixture(scope="session")
def echo_backend():
    backend = EchoBackend()
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def closed_port():
    port = ClosedPort()
    yield port.port
    port.close()


@pytest.fixture
def memcached():
    cache = FakeMemcached()
    yield cache
    cache.stop()


@pytest.fixture(params=sorted(CACHE_KINDS))
def cache_server(request, workdir):
    server = CACHE_KINDS[request.param](workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cache_ca(workdir):
    """A caches.CacheCA: the throwaway CA of the TLS cache servers."""
    return CacheCA(workdir)


@pytest.fixture
def connect_proxy():
    proxy = ConnectProxy()
    yield proxy
    proxy.stop()


@pytest.fixture
def httpd_factory(workdir):
    started = []

    def start(conf="", startup_warnings=(), **kwargs):
        server = Httpd(workdir, conf, **kwargs)
        started.append(server)
        server.start()
        assert_quiet_start(server, startup_warnings)
        return server

    yield start
    crashed = []
    for server in started:
        server.stop()
        crashed += server.crashes()
    assert not crashed, "httpd children crashed:\n" + "\n".join(crashed)


# ---- sanitizer reports (the sanitizer pass of scripts/test) ----

@pytest.fixture(scope="session", autouse=True)
def sanitizer_log_dir():
    if SANITIZER_LOGS:
        os.makedirs(SANITIZER_LOGS, exist_ok=True)
        os.chmod(SANITIZER_LOGS, 0o1777)  # children run as www-data


@pytest.fixture(autouse=True)
def no_sanitizer_reports(sanitizer_log_dir):
    """Fails the test during which an httpd process wrote a sanitizer report."""
    before = set(sanitizer_reports())
    yield
    new = {name: text for name, text in sanitizer_reports().items()
           if name not in before}
    assert not new, "sanitizer reports:\n" + "\n".join(
        "---- %s ----\n%s" % (name, text[-6000:]) for name, text in new.items())


def require_module():
    if not os.path.exists(MODULE_PATH):
        pytest.fail("%s is missing: build it first (cmake -S . -B build && "
                    "cmake --build build)" % os.path.relpath(MODULE_PATH,
                                                            REPO_ROOT))


@pytest.fixture
def module_httpd(httpd_factory):
    require_module()
    return httpd_factory


@pytest.fixture
def config_test(workdir):
    require_module()

    def run(conf_text, **kwargs):
        return run_config_test(conf_text, workdir=workdir, **kwargs)

    return run


# ---- the browser tests (test_browser.py, test_inject.py) ----

@pytest.fixture(scope="session")
def plain_emulator(workdir):
    """The emulator over plain HTTP on loopback: the browser loads widget.js
    from it (chromium does not trust the throwaway CA; the module accepts
    http:// for a loopback service)."""
    emu = Emulator(workdir, None, {WIDGET_ID: WIDGET_SECRET}).start()
    yield emu
    emu.stop()


@pytest.fixture
def plain_dm(plain_emulator):
    yield from reset_around(plain_emulator)


@pytest.fixture
def chromium(workdir):
    """A headless chromium with a fresh profile (browser.Chromium)."""
    from . import browser as browsers  # selenium: the browser tests only
    browser = browsers.Chromium(workdir)
    yield browser
    browser.quit()


@pytest.fixture
def demo_portal(workdir, plain_dm):
    """The demo portal (demo/httpd.conf, demo/htdocs) against plain_dm."""
    from . import browser as browsers
    require_module()
    portal = browsers.DemoPortal(workdir, plain_dm).start()
    assert_quiet_start(portal)
    yield portal
    portal.stop()
    crashed = portal.crashes()
    assert not crashed, "httpd children crashed:\n" + "\n".join(crashed)
