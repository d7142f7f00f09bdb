"""The module's version is written once, in src/pegadm_version.h: CMake's
project() and the Debian changelog say the same, httpd's log shows it at
start-up and the status handler reports it."""

import os
import re

import pegadm_harness as harness

ROOT = harness.REPO_ROOT


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as fh:
        return fh.read()


def header_version():
    found = re.findall(r'^#define PEGADM_VERSION "([^"]+)"$', read("src", "pegadm_version.h"),
                       re.M)
    assert len(found) == 1, found
    return found[0]


def test_cmake_and_debian_agree_with_the_header():
    version = header_version()
    project = re.search(r"^project\(mod_pegadm VERSION (\S+)", read("CMakeLists.txt"), re.M)
    assert project and project.group(1) == version
    if os.path.exists(os.path.join(ROOT, "debian", "changelog")):
        top = re.match(r"^\S+ \(([^)-]+)(-[^)]*)?\)", read("debian", "changelog"))
        assert top and top.group(1) == version, top


def test_start_up_log_and_status_show_it(module_httpd, dm):
    version = header_version()
    server = module_httpd(harness.portal_conf(
        dm, harness.location("/pegadm/status", "SetHandler pegadm-status", auth=False)))
    ready = [line for line in server.error_log().splitlines() if "PEGADM602" in line]
    assert ready and ready[0].endswith("mod_pegadm %s ready" % version), ready
    assert server.request("GET", "/pegadm/status").json()["version"] == version
