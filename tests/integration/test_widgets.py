"""Several widgets on one server: locations and virtual hosts with their
own widget ID, secret and service never share sessions, cache entries or
tokens, even for the same user name."""

import pytest

import pegadm_harness as harness
from pegadm_harness import (OTHER_WIDGET_ID, OTHER_WIDGET_SECRET, WIDGET_ID, WIDGET_SECRET,
                             assert_session, location, parse_vars, pegadm_conf, same_origin_request,
                             session_get)

SECRETS = {WIDGET_ID: WIDGET_SECRET, OTHER_WIDGET_ID: OTHER_WIDGET_SECRET}
JWT = harness.load_emulator_module()  # its own verifier, independent of the module's code


def widget_directives(widget, secret):
    return ("PegaDMWidgetID %s" % widget, 'PegaDMJWTSecret "%s"' % secret)


def assert_tokens_signed_per_widget(emulator):
    """Every token the service received verifies with the secret of the
    widget it was for, and never with the other widget's secret."""
    state = emulator.state()
    assert state["rejections"] == []
    widget_of = {sid: s["widget"] for sid, s in state["sessions"].items()}
    assert state["tokens"]
    for token in state["tokens"]:
        _, claims, _, _ = JWT.split_jwt(token)
        widget = claims["iss"] if claims["iss"] in SECRETS else widget_of[claims["iss"]]
        JWT.verify_jwt(token, SECRETS[widget], claims["iss"])
        other = OTHER_WIDGET_ID if widget == WIDGET_ID else WIDGET_ID
        with pytest.raises(JWT.Rejection, match="signature"):
            JWT.verify_jwt(token, SECRETS[other], claims["iss"])


# --------------------------------------------------------------------------
# two locations
# --------------------------------------------------------------------------

@pytest.fixture
def two_locations(module_httpd, dm):
    conf = pegadm_conf(dm) + "".join(
        location("/%s/session" % name, "SetHandler pegadm-session",
                 *widget_directives(widget, secret))
        + location("/%s/eager/" % name, "PegaDM On", *widget_directives(widget, secret))
        for name, widget, secret in (("a", WIDGET_ID, WIDGET_SECRET),
                                     ("b", OTHER_WIDGET_ID, OTHER_WIDGET_SECRET)))
    conf += "Alias /a/eager/ htdocs/eager/\nAlias /b/eager/ htdocs/eager/\n"
    return module_httpd(conf)


def sessions_of_both(server):
    a = assert_session(session_get(server, "alice", path="/a/session"), widget=WIDGET_ID)
    b = assert_session(session_get(server, "alice", path="/b/session"),
                       widget=OTHER_WIDGET_ID)
    return a, b


def test_same_user_gets_one_session_per_widget(two_locations, dm):
    a, b = sessions_of_both(two_locations)
    assert a != b
    assert sessions_of_both(two_locations) == (a, b)
    creates = dm.creates_for("alice")
    assert sorted((c["widget"], c["sessionId"]) for c in creates) == sorted(
        [(WIDGET_ID, a), (OTHER_WIDGET_ID, b)])
    assert_tokens_signed_per_widget(dm)


def test_eager_pages_export_their_own_widget(two_locations, dm):
    a, b = sessions_of_both(two_locations)
    for prefix, widget, sid in (("/a", WIDGET_ID, a), ("/b", OTHER_WIDGET_ID, b)):
        resp = two_locations.request("GET", prefix + "/eager/session.shtml", user="alice")
        assert resp.status == 200, resp
        seen = parse_vars(resp.body)
        assert seen == {"SID": sid.encode(), "WID": widget.encode()}, seen
    assert len(dm.state()["creates"]) == 2


def test_renewing_or_forgetting_one_widget_leaves_the_other(two_locations, dm):
    a, b = sessions_of_both(two_locations)
    fresh = assert_session(same_origin_request(two_locations, "POST", "alice",
                                               path="/a/session"))
    assert fresh not in (a, b)
    assert sessions_of_both(two_locations) == (fresh, b)
    resp = same_origin_request(two_locations, "DELETE", "alice", path="/b/session")
    assert resp.status == 204, resp
    again_a, new_b = sessions_of_both(two_locations)
    assert again_a == fresh and new_b not in (a, b, fresh)
    assert [c["widget"] for c in dm.state()["creates"]] == [
        WIDGET_ID, OTHER_WIDGET_ID, WIDGET_ID, OTHER_WIDGET_ID]
    assert_tokens_signed_per_widget(dm)


# --------------------------------------------------------------------------
# two virtual hosts, each with its own service
# --------------------------------------------------------------------------

@pytest.fixture
def second_service(workdir, ca):
    """A second service that knows only the other widget: a call for the
    first widget reaching it would be refused (unknown widget)."""
    emulator = harness.Emulator(workdir, ca, {OTHER_WIDGET_ID: OTHER_WIDGET_SECRET}).start()
    yield emulator
    emulator.stop()


def vhost(name, widget, secret, service):
    return """
<VirtualHost 127.0.0.1:*>
    ServerName {name}
    PegaDMWidgetID {widget}
    PegaDMJWTSecret "{secret}"
    PegaDMServiceURL {url}
    PegaDMCAFile "{ca}"
{locations}</VirtualHost>
""".format(name=name, widget=widget, secret=secret, url=service.url, ca=service.ca_file,
           locations=harness.session_location() + location("/eager/", "PegaDM On"))


def test_virtual_hosts_keep_to_their_own_widget_and_service(module_httpd, dm,
                                                            second_service):
    server = module_httpd(vhost("a.example", WIDGET_ID, WIDGET_SECRET, dm)
                          + vhost("b.example", OTHER_WIDGET_ID, OTHER_WIDGET_SECRET,
                                  second_service))

    def get(host, path="/pegadm/session"):
        return server.request("GET", path, user="alice", headers={"Host": host})

    a = assert_session(get("a.example"), widget=WIDGET_ID)
    b = assert_session(get("b.example"), widget=OTHER_WIDGET_ID)
    assert a != b
    assert assert_session(get("a.example"), widget=WIDGET_ID) == a
    for host, sid in (("a.example", a), ("b.example", b)):
        assert parse_vars(get(host, "/eager/session.shtml").body)["SID"] == sid.encode()
    first, second = dm.state(), second_service.state()
    assert [(c["widget"], c["sessionId"]) for c in first["creates"]] == [(WIDGET_ID, a)]
    assert [(c["widget"], c["sessionId"]) for c in second["creates"]] == [(OTHER_WIDGET_ID, b)]
    assert [p["sessionId"] for p in first["private_data"]] == [a]
    assert [p["sessionId"] for p in second["private_data"]] == [b]
    assert_tokens_signed_per_widget(dm)
    assert_tokens_signed_per_widget(second_service)
