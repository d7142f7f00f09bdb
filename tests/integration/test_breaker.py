"""The circuit breaker: after PegaDMBreakerThreshold consecutive failures no
call reaches the service for PegaDMBreakerCooldown seconds (fast 503s), then
exactly one probe does; its success closes the breaker, its failure re-opens
it. The state is shared by all child processes of the server."""

import re
import threading
import time

import pytest

import pegadm_harness as harness
from pegadm_harness import (assert_json_error, assert_retry_after, assert_session, location,
                             parse_vars, portal_conf, session_get)

COOLDOWN = 2


def breaker_site(dm, threshold=3, cooldown=COOLDOWN, extra=()):
    return portal_conf(dm, location("/eager/", "PegaDM On"), server_extra=[
        "PegaDMBreakerThreshold %d" % threshold, "PegaDMBreakerCooldown %d" % cooldown,
        *harness.PIDS_LOG, *extra])


def upstream_calls(dm):
    """Calls that reached the emulator's create endpoint, failed or not."""
    state = dm.state()
    return (len([f for f in state["faults"] if f["endpoint"] == "create"])
            + len(state["creates"]))


def log_count(server, number):
    return len(re.findall(r"\b%s:" % number, server.error_log()))


def error_lines(server):
    """Error log lines of level error or worse, of any module."""
    return [line for line in server.error_log().splitlines()
            if re.search(r"\[[\w]*:(error|crit|alert|emerg)\]", line)]


def fail_until_open(server, dm, users):
    before = upstream_calls(dm)
    for user in users:
        resp = session_get(server, user)
        assert_json_error(resp, 503, "upstream_unavailable")
        # the service was called: no cool-down to tell of
        assert resp.header("Retry-After") == "10", resp
    assert upstream_calls(dm) == before + len(users)
    assert log_count(server, "PEGADM300") == 1, server.error_log()


def wait_cooldown():
    time.sleep(COOLDOWN + 0.3)


def test_opens_after_the_threshold_and_answers_fast_without_calling(module_httpd, dm):
    server = module_httpd(breaker_site(dm), users=["u%d" % i for i in range(10)])
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, ["u0", "u1", "u2"])
    errors_before = log_count(server, "PEGADM036")
    for user in ("u3", "u4", "u5"):
        resp = session_get(server, user)
        assert_json_error(resp, 503, "upstream_unavailable")
        assert_retry_after(resp)
        page = server.request("GET", "/eager/session.shtml", user=user)
        assert page.status == 200 and parse_vars(page.body)["SID"] == b"(none)"
    assert upstream_calls(dm) == 3, "calls went out while the breaker was open"
    # logged once when it opened, not once per refused request
    assert log_count(server, "PEGADM036") == errors_before
    assert log_count(server, "PEGADM300") == 1


def test_refused_requests_add_no_error_lines(module_httpd, dm):
    users = ["u%d" % i for i in range(10)]
    server = module_httpd(breaker_site(dm), users=users, loglevel="info pegadm:debug")
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, users[:3])
    errors = error_lines(server)
    # one line per failure that reached the service, and the opening
    assert len(errors) == 4, errors
    assert [log_count(server, n) for n in ("PEGADM036", "PEGADM300")] == [3, 1]
    for user in users[3:]:
        assert_json_error(session_get(server, user), 503, "upstream_unavailable")
        page = server.request("GET", "/eager/session.shtml", user=user)
        assert page.status == 200 and parse_vars(page.body)["SID"] == b"(none)"
    assert upstream_calls(dm) == 3
    assert error_lines(server) == errors
    refused = [line for line in harness.pegadm_log_lines(server.error_log())
               if "PEGADM036" in line and "circuit breaker open" in line]
    assert len(refused) == 2 * len(users[3:]), refused
    assert all("[pegadm:debug]" in line for line in refused), refused


def test_retry_after_tells_the_rest_of_the_cooldown(module_httpd, dm):
    users = ["u%d" % i for i in range(6)]
    server = module_httpd(breaker_site(dm, cooldown=20), users=users)
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, users[:3])
    resp = session_get(server, "u3")
    assert_json_error(resp, 503, "upstream_unavailable")
    first = assert_retry_after(resp, most=20)
    assert first >= 18, resp
    time.sleep(2.2)
    resp = session_get(server, "u4")
    assert_json_error(resp, 503, "upstream_unavailable")
    later = assert_retry_after(resp, most=20)
    assert 1 <= later <= first - 2, (first, later)
    # a fresh session asked for (POST) is refused the same way
    resp = harness.same_origin_request(server, "POST", "u5")
    assert_json_error(resp, 503, "upstream_unavailable")
    assert 1 <= assert_retry_after(resp) <= later, resp
    assert upstream_calls(dm) == 3


def test_a_successful_probe_closes_it(module_httpd, dm):
    server = module_httpd(breaker_site(dm), users=["u%d" % i for i in range(10)])
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, ["u0", "u1", "u2"])
    dm.set_mode("ok")
    assert_json_error(session_get(server, "u3"), 503, "upstream_unavailable")
    wait_cooldown()
    assert_session(session_get(server, "u4"))
    assert log_count(server, "PEGADM302") == 1
    for user in ("u5", "u6"):
        assert_session(session_get(server, user))
    assert [len(dm.creates_for(u)) for u in ("u3", "u4", "u5", "u6")] == [0, 1, 1, 1]
    assert log_count(server, "PEGADM302") == 1 and log_count(server, "PEGADM300") == 1


def test_a_failed_probe_reopens_it(module_httpd, dm):
    server = module_httpd(breaker_site(dm), users=["u%d" % i for i in range(10)])
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, ["u0", "u1", "u2"])
    wait_cooldown()
    assert_json_error(session_get(server, "u3"), 503, "upstream_unavailable")
    assert upstream_calls(dm) == 4, "the probe did not go out"
    assert log_count(server, "PEGADM301") == 1
    for user in ("u4", "u5"):
        assert_json_error(session_get(server, user), 503, "upstream_unavailable")
    assert upstream_calls(dm) == 4, "calls went out after the probe failed"
    dm.set_mode("ok")
    wait_cooldown()
    assert_session(session_get(server, "u6"))
    assert log_count(server, "PEGADM302") == 1


def test_exactly_one_probe_among_concurrent_requests(module_httpd, dm):
    users = ["u%d" % i for i in range(20)]
    server = module_httpd(breaker_site(dm), users=users)
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, users[:3])
    wait_cooldown()
    # A slow but healthy service: the probe is still out when the others come.
    dm.set_mode("delay", applies_to="create", delay_ms=800)
    barrier = threading.Barrier(12)
    results = {}

    def client(user):
        barrier.wait(timeout=10)
        results[user] = session_get(server, user)

    threads = [threading.Thread(target=client, args=(u,)) for u in users[3:15]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    statuses = sorted(r.status for r in results.values())
    assert statuses == [200] + [503] * 11, statuses
    assert len(dm.state()["creates"]) == 1
    # the probe's outcome may come any moment: worth asking again soon
    assert {r.header("Retry-After") for r in results.values() if r.status == 503} == {"1"}


def test_cached_sessions_are_still_served_while_it_is_open(module_httpd, dm):
    server = module_httpd(breaker_site(dm), users=["alice", "u0", "u1", "u2", "u3"])
    sid = assert_session(session_get(server, "alice"))
    dm.set_mode("http500", applies_to="create")
    fail_until_open(server, dm, ["u0", "u1", "u2"])
    calls = upstream_calls(dm)
    assert_json_error(session_get(server, "u3"), 503, "upstream_unavailable")
    assert assert_session(session_get(server, "alice")) == sid
    page = server.request("GET", "/eager/session.shtml", user="alice")
    assert parse_vars(page.body)["SID"] == sid.encode()
    assert upstream_calls(dm) == calls


def test_private_data_failures_count_too(module_httpd, dm):
    server = module_httpd(breaker_site(dm), users=["u0", "u1", "u2", "u3"])
    dm.set_mode("http500", applies_to="private_data")
    for user in ("u0", "u1", "u2"):
        assert_json_error(session_get(server, user), 503, "upstream_unavailable")
    assert log_count(server, "PEGADM300") == 1
    assert_json_error(session_get(server, "u3"), 503, "upstream_unavailable")
    assert len(dm.state()["creates"]) == 3


def test_threshold_zero_switches_it_off(module_httpd, dm):
    users = ["u%d" % i for i in range(8)]
    server = module_httpd(breaker_site(dm, threshold=0), users=users)
    dm.set_mode("http500", applies_to="create")
    for user in users:
        resp = session_get(server, user)
        assert_json_error(resp, 503, "upstream_unavailable")
        assert resp.header("Retry-After") == "10", resp
    assert upstream_calls(dm) == len(users)
    assert log_count(server, "PEGADM300") == 0


def test_the_default_threshold_is_five(module_httpd, dm):
    users = ["u%d" % i for i in range(8)]
    server = module_httpd(portal_conf(dm), users=users)
    dm.set_mode("http500", applies_to="create")
    for user in users:
        assert_json_error(session_get(server, user), 503, "upstream_unavailable")
    assert upstream_calls(dm) == 5
    assert log_count(server, "PEGADM300") == 1
    assert "no calls for 30s" in server.error_log()


def test_the_state_is_shared_by_all_child_processes(module_httpd, dm):
    users = ["u%d" % i for i in range(4)]
    server = module_httpd(breaker_site(dm), users=users, mpm="prefork")
    dm.set_mode("http500", applies_to="create")
    conns = [harness.KeptConnection(server) for _ in users]
    try:
        statuses = [conn.request("GET", harness.SESSION_PATH, user).status
                    for conn, user in zip(conns, users)]
    finally:
        for conn in conns:
            conn.close()
    assert statuses == [503] * 4
    harness.assert_one_child_each(harness.children_serving(server, conns, 4))
    assert upstream_calls(dm) == 3, "a child called a service the others found down"
    assert log_count(server, "PEGADM300") == 1


@pytest.mark.parametrize("directive", [
    "PegaDMBreakerThreshold -1", "PegaDMBreakerThreshold five",
    "PegaDMBreakerCooldown 0", "PegaDMBreakerCooldown 3601",
])
def test_bad_values_are_refused_at_start_up(config_test, directive):
    result = config_test(harness.pegadm_conf(extra=[directive]))
    code, output = result
    assert code != 0, output
    assert directive.split()[0] in output, output
    assert re.search(r"line %d\b" % result.line_of(directive), output), output


# ---- one customer's failures are that customer's (issue 23, F13) ----

def test_one_customers_refused_private_data_never_opens_it_for_everyone(module_httpd, dm):
    users = ["mallory", "alice", "bob"]
    server = module_httpd(breaker_site(dm), users=users)
    dm.refuse_customer("mallory", 400, applies_to="private_data")
    for _ in range(5):  # more than the threshold, and again after the cool-down's length
        assert_json_error(session_get(server, "mallory"), 503, "upstream_unavailable")
    assert log_count(server, "PEGADM300") == 0, server.error_log()
    assert_session(session_get(server, "alice"))
    assert_session(session_get(server, "bob"))


def test_a_customers_refused_create_is_counted_but_not_everyones(module_httpd, dm):
    users = ["mallory", "alice"]
    status = harness.location("/pegadm/status", "SetHandler pegadm-status", auth=False)
    server = module_httpd(breaker_site(dm, extra=()) + status, users=users)
    dm.refuse_customer("mallory", 422, applies_to="create")
    for _ in range(4):
        assert_json_error(session_get(server, "mallory"), 503, "upstream_unavailable")
    assert_session(session_get(server, "alice"))
    text = server.request("GET", "/pegadm/status?format=prometheus").text
    failed = [line for line in text.splitlines()
              if line.startswith("pegadm_creates_total") and 'outcome="ok"' not in line
              and not line.endswith(" 0")]
    assert failed, text
    assert re.search(r'pegadm_breaker_open\{[^}]*\} 0', text), text


def test_a_server_error_for_everyone_still_opens_it(module_httpd, dm):
    server = module_httpd(breaker_site(dm), users=["u0", "u1", "u2", "u3"])
    dm.set_mode("http500", applies_to="private_data")
    for user in ("u0", "u1", "u2"):
        assert_json_error(session_get(server, user), 503, "upstream_unavailable")
    assert log_count(server, "PEGADM300") == 1
