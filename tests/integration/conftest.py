"""Fixtures: a work directory, a throwaway CA, the DM emulator, an echo
backend and a factory for real httpd instances.

    workdir        session: a 0755 temp directory, removed at the end
    ca             session: {"ca", "ca_key", "cert", "key"} paths (throwaway CA)
    emulator       session: the running harness.Emulator (HTTPS, test widgets)
    dm             function: the emulator, reset before the test and after it
    echo_backend   session: harness.EchoBackend on 127.0.0.1 (plain HTTP)
    closed_port    session: a loopback port that refuses connections
    httpd_factory  function: start(conf="", users=..., mpm=..., loglevel=...,
                   env=..., load_pegadm=True) -> harness.Httpd, stopped after
                   the test; a child crash seen in its error log fails the test
    module_httpd   function: like httpd_factory but first checks the module
                   was built
    config_test    function: config_test(conf_text, **kw) -> ConfigTestResult
"""

import os

import pytest

import harness


@pytest.fixture(scope="session")
def workdir():
    path = harness.make_public_dir()
    yield path
    if not os.environ.get("PEGADM_TEST_KEEP"):
        harness.remove_tree(path)


@pytest.fixture(scope="session")
def ca(workdir):
    return harness.load_ca_module().make_ca(os.path.join(workdir, "ca"))


@pytest.fixture(scope="session")
def emulator(workdir, ca):
    emu = harness.Emulator(workdir, ca, {
        harness.WIDGET_ID: harness.WIDGET_SECRET,
        harness.OTHER_WIDGET_ID: harness.OTHER_WIDGET_SECRET,
    }).start()
    yield emu
    emu.stop()


@pytest.fixture
def dm(emulator):
    """The emulator with a clean record and fault mode 'ok'."""
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture(scope="session")
def echo_backend():
    backend = harness.EchoBackend()
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def closed_port():
    port = harness.ClosedPort()
    yield port.port
    port.close()


@pytest.fixture
def httpd_factory(workdir):
    started = []

    def start(conf="", **kwargs):
        server = harness.Httpd(workdir, conf, **kwargs)
        started.append(server)
        return server.start()

    yield start
    crashed = []
    for server in started:
        server.stop()
        crashed += server.crashes()
    assert not crashed, "httpd children crashed:\n" + "\n".join(crashed)


def require_module():
    if not os.path.exists(harness.MODULE_PATH):
        pytest.fail("%s is missing: build it first (cmake -S . -B build && "
                    "cmake --build build)" % os.path.relpath(harness.MODULE_PATH,
                                                            harness.REPO_ROOT))


@pytest.fixture
def module_httpd(httpd_factory):
    require_module()
    return httpd_factory


@pytest.fixture
def config_test(workdir):
    require_module()

    def run(conf_text, **kwargs):
        return harness.config_test(conf_text, workdir=workdir, **kwargs)

    return run
