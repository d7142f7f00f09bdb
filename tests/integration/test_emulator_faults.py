"""The emulator's further fault modes and its secret control call: the
fault tests rely on them, so they must do what they claim. No httpd here."""

import http.client
import json
import time

import pytest

import pegadm_harness as harness

emu = harness.load_emulator_module()


def create(dm, secret=harness.WIDGET_SECRET):
    now = int(time.time())
    token = emu.sign_jwt({"iss": harness.WIDGET_ID, "iat": now, "exp": now + 60}, secret)
    return dm.call("POST", "/%s/create" % harness.WIDGET_ID, b'{"customerId": "alice"}', {
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})


def test_unsafe_session_id_is_a_string_with_markup_and_a_line_break(dm):
    dm.set_mode("unsafe_session_id")
    sid = create(dm).json()["sessionId"]
    assert isinstance(sid, str) and "<script>" in sid and "\r\n" in sid


def test_reset_mid_answer_sends_part_of_the_body_then_drops(dm):
    dm.set_mode("reset_mid_answer")
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        create(dm)


def test_huge_chunked_streams_more_than_the_module_accepts(dm):
    dm.set_mode("huge_chunked")
    resp = create(dm)
    assert resp.status == 200 and resp.header("Content-Length") is None
    assert len(resp.body) > 1 << 20
    assert json.loads(resp.body)["sessionId"] == "s"


def test_flap_alternates_healthy_and_failing():
    fault = {"mode": "flap", "fail_mode": "http500", "period_ms": 1000, "since": 100.0,
             "applies_to": "all", "delay_ms": 0, "count": None}
    phases = [emu.flap_phase(dict(fault), now)["mode"] for now in (100.2, 101.2, 102.5, 103.9)]
    assert phases == ["ok", "http500", "ok", "http500"]


def test_flap_switches_at_run_time(dm):
    dm.set_mode("flap", period_ms=400, fail_mode="http500")
    statuses = set()
    deadline = time.monotonic() + 5
    while statuses != {200, 500} and time.monotonic() < deadline:
        statuses.add(create(dm).status)
        time.sleep(0.05)
    assert statuses == {200, 500}


@pytest.mark.parametrize("spec", [
    {"mode": "flap", "period_ms": 0},
    {"mode": "flap", "fail_mode": "flap"},
    {"mode": "flap", "fail_mode": "nonsense"},
])
def test_bad_flap_settings_are_refused(dm, spec):
    assert dm.call("POST", "/__emulator/mode", spec).status == 400


def test_secret_can_be_changed_and_reset_restores_it(dm):
    assert create(dm).status == 200
    dm.set_secret("the-rotated-secret")
    assert create(dm).status == 401
    assert create(dm, "the-rotated-secret").status == 200
    dm.reset()
    assert create(dm).status == 200
    assert dm.call("POST", "/__emulator/secret",
                   {"widget": harness.WIDGET_ID, "secret": ""}).status == 400
