"""The emulator's own checks must be able to fail, or a module minting bad
tokens would pass every other test. These tests need no httpd."""

import json
import time

import pytest

import pegadm_harness as harness

emu = harness.load_emulator_module()

# RFC 7515, appendix A.1: an HS256 JWS with its key and expected signature.
RFC_HEADER = b'{"typ":"JWT",\r\n "alg":"HS256"}'
RFC_PAYLOAD = b'{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}'
RFC_KEY = emu.b64url_decode(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    "key")
RFC_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

SECRET = harness.WIDGET_SECRET
WIDGET = harness.WIDGET_ID


def rejection_reason(token, secret=SECRET, iss=WIDGET, now=None):
    with pytest.raises(emu.Rejection) as info:
        emu.verify_jwt(token, secret, iss, now)
    return info.value.reason


def claims(now=None, **changes):
    now = int(time.time()) if now is None else now
    base = {"iss": WIDGET, "iat": now, "exp": now + 60}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def test_signing_reproduces_rfc7515_a1():
    assert emu.sign_jwt(RFC_PAYLOAD, RFC_KEY, header=RFC_HEADER) == RFC_TOKEN


def test_rfc7515_a1_signature_verifies_but_claims_are_refused():
    header, payload, signing_input, signature = emu.split_jwt(RFC_TOKEN)
    emu.check_jwt_header(header)
    emu.check_jwt_signature(signing_input, signature, RFC_KEY)
    # The example has no iat, so a strict verifier still refuses it.
    assert "iat" in rejection_reason(RFC_TOKEN, RFC_KEY, "joe", now=1300819300)


def test_tampered_rfc7515_a1_token_fails_the_signature_check():
    head, payload, sig = RFC_TOKEN.split(".")
    tampered_payload = emu.b64url_encode(RFC_PAYLOAD.replace(b"joe", b"eve"))
    for token in (head + "." + tampered_payload + "." + sig,
                  head + "." + payload + "." + sig[:-1] + ("A" if sig[-1] != "A" else "B")):
        assert "signature" in rejection_reason(token, RFC_KEY, "joe", now=1300819300)


def test_a_correct_token_verifies():
    token = emu.sign_jwt(claims(), SECRET)
    assert emu.verify_jwt(token, SECRET, WIDGET)["iss"] == WIDGET


def forged(header, payload_claims, secret=SECRET):
    return emu.sign_jwt(payload_claims, secret, header=header)


BAD_TOKENS = {
    "alg none": lambda: forged({"alg": "none", "typ": "JWT"}, claims()),
    "alg none unsigned": lambda: forged({"alg": "none"}, claims()).rsplit(".", 1)[0] + ".",
    "alg HS512": lambda: forged({"alg": "HS512", "typ": "JWT"}, claims()),
    "alg RS256": lambda: forged({"alg": "RS256"}, claims()),
    "alg hs256 lower case": lambda: forged({"alg": "hs256"}, claims()),
    "no alg": lambda: forged({"typ": "JWT"}, claims()),
    "typ not JWT": lambda: forged({"alg": "HS256", "typ": "JOSE+JSON"}, claims()),
    "crit header": lambda: forged({"alg": "HS256", "crit": ["exp"]}, claims()),
    "wrong secret": lambda: emu.sign_jwt(claims(), "not the secret"),
    "wrong iss": lambda: emu.sign_jwt(claims(iss="someone-else"), SECRET),
    "no iss": lambda: emu.sign_jwt(claims(iss=DROP), SECRET),
    "no iat": lambda: emu.sign_jwt(claims(iat=DROP), SECRET),
    "no exp": lambda: emu.sign_jwt(claims(exp=DROP), SECRET),
    "float iat": lambda: emu.sign_jwt(claims(iat=time.time()), SECRET),
    "bool iat": lambda: emu.sign_jwt(claims(iat=True), SECRET),
    "string exp": lambda: emu.sign_jwt(claims(exp=str(int(time.time()) + 60)), SECRET),
    "expired": lambda: emu.sign_jwt(claims(now=int(time.time()) - 120), SECRET),
    "iat in the future": lambda: emu.sign_jwt(claims(now=int(time.time()) + 120), SECRET),
    "iat too old": lambda: emu.sign_jwt(
        claims(iat=int(time.time()) - 400, exp=int(time.time()) + 10), SECRET),
    "lifetime 301": lambda: emu.sign_jwt(
        claims(iat=int(time.time()), exp=int(time.time()) + 301), SECRET),
    "exp before iat": lambda: emu.sign_jwt(
        claims(iat=int(time.time()) + 30, exp=int(time.time()) + 20), SECRET),
    "padded signature": lambda: emu.sign_jwt(claims(), SECRET) + "=",
    "two segments": lambda: emu.sign_jwt(claims(), SECRET).rsplit(".", 1)[0],
    "four segments": lambda: emu.sign_jwt(claims(), SECRET) + ".e30",
    "standard base64 alphabet": lambda: emu.sign_jwt(claims(), SECRET) + "+/",
    "payload not an object": lambda: emu.sign_jwt([1, 2], SECRET),
    "duplicate claim": lambda: emu.sign_jwt(
        ('{"iss":"x","iss":"%s","iat":%d,"exp":%d}'
         % (WIDGET, time.time(), time.time() + 60)).encode(), SECRET),
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused(name):
    token = BAD_TOKENS[name]()
    rejection_reason(token)


# ---- the running emulator, over HTTPS ---------------------------------

def post_create(dm, token, body=b'{"customerId": "alice"}', widget=WIDGET,
                content_type="application/json"):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    return dm.call("POST", "/%s/create" % widget, body, headers)


def post_private_data(dm, token, body):
    return dm.call("POST", "/private-data", body, {
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})


def valid_token(iss=WIDGET, secret=SECRET):
    now = int(time.time())
    return emu.sign_jwt({"iss": iss, "iat": now, "exp": now + 60}, secret)


def test_create_then_private_data_is_recorded(dm):
    resp = post_create(dm, valid_token(), '{"customerId": "Zo\\u00eb \\"q\\" \\\\"}'.encode())
    assert resp.status == 200, resp
    sid = resp.json()["sessionId"]
    resp = post_private_data(dm, valid_token(iss=sid), {"customerId": 'Zoë "q" \\', "x": 1})
    assert (resp.status, resp.json()) == (200, {})
    state = dm.state()
    assert [c["customerId"] for c in state["creates"]] == ['Zoë "q" \\']
    assert state["creates"][0]["customerIdUtf8Hex"] == 'Zoë "q" \\'.encode().hex()
    assert state["sessions"][sid]["privateData"] == {"customerId": 'Zoë "q" \\', "x": 1}
    assert state["rejections"] == []
    assert len(state["tokens"]) == 2


@pytest.mark.parametrize("case, status", [
    ("no token", 401),
    ("tampered token", 401),
    ("token of the other widget", 401),
    ("unknown widget", 404),
    ("text/plain", 400),
    ("extra key", 400),
    ("empty customerId", 400),
    ("numeric customerId", 400),
    ("not JSON", 400),
])
def test_create_refusals(dm, case, status):
    token = valid_token()
    kwargs = {}
    if case == "no token":
        token = None
    elif case == "tampered token":
        token = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    elif case == "token of the other widget":
        token = valid_token(iss=harness.OTHER_WIDGET_ID, secret=harness.OTHER_WIDGET_SECRET)
    elif case == "unknown widget":
        kwargs["widget"] = "11111111-2222-4333-8444-555555555555"
    elif case == "text/plain":
        kwargs["content_type"] = "text/plain"
    elif case == "extra key":
        kwargs["body"] = b'{"customerId": "alice", "proactiveTrigger": "x"}'
    elif case == "empty customerId":
        kwargs["body"] = b'{"customerId": ""}'
    elif case == "numeric customerId":
        kwargs["body"] = b'{"customerId": 7}'
    elif case == "not JSON":
        kwargs["body"] = b"customerId=alice"
    resp = post_create(dm, token, **kwargs)
    assert resp.status == status, resp
    state = dm.state()
    assert state["creates"] == [] and state["sessions"] == {}
    assert len(state["rejections"]) == 1 and state["rejections"][0]["reason"]


def test_private_data_needs_a_session_the_emulator_issued(dm):
    resp = post_private_data(dm, valid_token(iss="no-such-session"), {"customerId": "a"})
    assert resp.status == 401
    sid = post_create(dm, valid_token()).json()["sessionId"]
    resp = post_private_data(dm, valid_token(iss=sid, secret="wrong"), {"customerId": "a"})
    assert resp.status == 401
    assert dm.state()["sessions"][sid]["privateData"] is None


def test_fault_modes_apply_and_expire(dm):
    dm.set_mode("http500", applies_to="create", count=1)
    assert post_create(dm, valid_token()).status == 500
    assert post_create(dm, valid_token()).status == 200
    dm.set_mode("no_session_id", applies_to="create")
    assert "sessionId" not in post_create(dm, valid_token()).json()
    dm.set_mode("non_json")
    assert not post_create(dm, valid_token()).body.startswith(b"{")
    dm.set_mode("delay", delay_ms=400)
    started = time.monotonic()
    assert post_create(dm, valid_token()).status == 200
    assert time.monotonic() - started >= 0.4
    assert [f["mode"] for f in dm.state()["faults"]] == [
        "http500", "no_session_id", "non_json", "delay"]


def test_widget_js_is_served(dm):
    resp = dm.call("GET", "/%s/widget.js" % WIDGET)
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/javascript"
    assert b"PegaUnifiedChatWidget" in resp.body
    assert dm.call("GET", "/%s/widget.js" % harness.OTHER_WIDGET_ID[::-1]).status == 404


def test_widget_events_are_recorded_until_reset(dm):
    event = {"event": "resume", "sessionId": "s-1", "page": "http://127.0.0.1/", "tab": "t"}
    # the widget sends them with mode no-cors: text/plain, no answer read
    resp = dm.call("POST", "/__emulator/widget-events", json.dumps(event).encode(),
                   {"Content-Type": "text/plain;charset=UTF-8"})
    assert resp.status == 200
    recorded = dm.state()["widget_events"]
    assert [{k: e[k] for k in event} for e in recorded] == [event]
    for bad in ({"event": "explode"}, [], {"sessionId": "s-1"}):
        assert dm.call("POST", "/__emulator/widget-events", bad).status == 400
    assert len(dm.state()["widget_events"]) == 1
    dm.reset()
    assert dm.state()["widget_events"] == []


def test_a_session_ends_as_pega_ends_it(dm):
    sid = post_create(dm, valid_token(), b'{"customerId": "carol"}').json()["sessionId"]
    view = "/__emulator/session/" + sid
    assert dm.call("GET", view).json()["ended"] is None
    for bad, status in (({"sessionId": sid, "reason": "bored"}, 400),
                        ({"sessionId": sid[::-1], "reason": "idle"}, 404),
                        ({"reason": "idle"}, 404)):
        assert dm.call("POST", "/__emulator/end-session", bad).status == status, bad
    dm.end_session(sid, "agent")
    assert dm.call("GET", view).json()["ended"] == "agent"
    assert [(e["sessionId"], e["reason"]) for e in dm.state()["ended"]] == [(sid, "agent")]
    dm.reset()
    assert dm.state()["ended"] == []
