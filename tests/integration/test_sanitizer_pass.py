"""The sanitizer pass of scripts/test must really run the instrumented
module inside httpd, and the ordinary pass the plain one: otherwise either
pass could go green without testing what it claims."""

import os

import pegadm_harness as harness
from pegadm_harness import assert_session, portal_conf, session_get


def child_pids(parent):
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % entry) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            pids.append(int(entry))
    return pids


def mapped_libraries(pid):
    with open("/proc/%d/maps" % pid) as fh:
        return {line.split()[-1] for line in fh if "/" in line}


def test_the_module_runs_with_the_sanitizers_exactly_in_the_sanitizer_pass(module_httpd, dm):
    server = module_httpd(portal_conf(dm))
    assert_session(session_get(server, "alice"))
    with open(harness.MODULE_PATH, "rb") as fh:
        instrumented = b"__asan_init" in fh.read()
    children = child_pids(server.proc.pid)
    assert children, "no httpd children"
    maps = mapped_libraries(children[0])
    assert os.path.realpath(harness.MODULE_PATH) in {os.path.realpath(m) for m in maps}
    runtime_loaded = any("libasan" in m for m in maps)
    sanitizer_pass = bool(harness.SANITIZER_RUNTIME)
    assert instrumented == sanitizer_pass, (harness.MODULE_PATH, instrumented)
    assert runtime_loaded == sanitizer_pass, sorted(maps)
