"""Sanitizer plumbing: the environment every httpd runs with when the module
under test is a sanitizer build, and the reports its processes wrote."""

import os


# A module built with -DPEGADM_SANITIZE=ON runs in Debian's (uninstrumented)
# httpd with the sanitizer runtime preloaded; scripts/test sets these two.
SANITIZER_RUNTIME = os.environ.get("PEGADM_TEST_SANITIZER_RUNTIME")
SANITIZER_LOGS = os.environ.get("PEGADM_TEST_SANITIZER_LOGS")


def sanitizer_env():
    """Environment for every httpd process when sanitizers are on: each
    report goes to a file of its own (asan.<pid>, ubsan.<pid>) under
    SANITIZER_LOGS, where the test run looks for them."""
    if not SANITIZER_RUNTIME:
        return {}
    assert SANITIZER_LOGS, "PEGADM_TEST_SANITIZER_LOGS must name a directory"
    return {
        "LD_PRELOAD": SANITIZER_RUNTIME,
        # httpd frees its pools at exit but not every library's globals:
        # leak reports would be about them, not about requests.
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:log_path=%s/asan"
                        % SANITIZER_LOGS,
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:log_path=%s/ubsan"
                         % SANITIZER_LOGS,
    }


def sanitizer_reports():
    """{file name: text} of the sanitizer reports written so far."""
    if not SANITIZER_LOGS or not os.path.isdir(SANITIZER_LOGS):
        return {}
    reports = {}
    for name in sorted(os.listdir(SANITIZER_LOGS)):
        with open(os.path.join(SANITIZER_LOGS, name), "rb") as fh:
            reports[name] = fh.read().decode("utf-8", "replace")
    return reports
