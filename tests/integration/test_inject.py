"""PegaDMInject: the bootstrap <script> tag goes right before </body> of
HTML pages, exactly once, and nowhere else: not into JSON or images, not
into pages that already load the widget, not into compressed answers it
cannot read. Backed by a small legacy application (LegacyApp) behind
ProxyPass, and proven with a CSP nonce in a real browser."""

import gzip
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import pegadm_harness as harness
from pegadm_harness import bootstrap_location, location, pegadm_conf, session_location

TAG = b'<script src="/pegadm/bootstrap.js" defer></script>'

PAGE = (b"<!DOCTYPE html>\n<html><head><title>Legacy</title></head>\n"
        b"<body><h1>Account overview</h1><p>Nothing here knows about chat.</p>\n"
        b"</body>\n</html>\n")
# Pieces the chunked answer is sent in: "</body>" is split over three.
CHUNKS = (PAGE[:PAGE.index(b"</body>") + 2], b"bo", PAGE[PAGE.index(b"</body>") + 4:])
JSON_BODY = b'{"html": "<html><body>x</body></html>"}\n'
PNG_BODY = b"\x89PNG\r\n\x1a\n" + b"\x00</body>\x00" * 50
ALREADY = {
    "/injected.html": PAGE.replace(b"</body>", b'<script src="/pegadm/bootstrap.js"></script>'
                                                b"</body>"),
    "/widget.html": PAGE.replace(b"</body>", b"<script id='pega-wm-chat' "
                                                b"src='https://w.example/x/widget.js'></script>"
                                                b"</body>"),
}
XHTML = PAGE.replace(b"</body>", b"</BODY >")
NO_BODY_END = b"<html><p>a fragment, no end tag <"


class _LegacyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, body, content_type, encoding=None):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in CHUNKS:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(0.05)  # separate reads at the proxy, so separate brigades
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        accept = self.headers.get("Accept-Encoding")
        self.server.accept_encodings.append(accept)
        path = self.path.split("?")[0]
        if path == "/page.html":
            self.send(PAGE, "text/html; charset=utf-8")
        elif path == "/chunked.html":
            self.send_chunked()
        elif path == "/gzip.html" and accept and "gzip" in accept:
            self.send(gzip.compress(PAGE), "text/html", "gzip")
        elif path == "/gzip.html":
            self.send(PAGE, "text/html")
        elif path == "/always-gzip.html":
            self.send(gzip.compress(PAGE), "text/html", "gzip")
        elif path == "/data.json":
            self.send(JSON_BODY, "application/json")
        elif path == "/image.png":
            self.send(PNG_BODY, "image/png")
        elif path in ALREADY:
            self.send(ALREADY[path], "text/html")
        elif path == "/page.xhtml":
            self.send(XHTML, "application/xhtml+xml")
        elif path == "/fragment.html":
            self.send(NO_BODY_END, "text/html")
        else:
            self.send(b"not found\n", "text/plain")

    def log_message(self, *args):
        pass


class LegacyApp:
    """An application whose templates nobody can change, on loopback."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _LegacyHandler)
        self.server.daemon_threads = True
        self.server.accept_encodings = []
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def accept_encodings(self):
        return self.server.accept_encodings

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def legacy():
    app = LegacyApp()
    yield app
    app.stop()


def module_line(name):
    return "LoadModule %s_module %s/mod_%s.so\n" % (name, harness.APACHE_MODULES, name)


def app_location(path, legacy, *directives):
    return location(path, "ProxyPass http://127.0.0.1:%d/" % legacy.port, *directives,
                    auth=False)


@pytest.fixture
def proxy(module_httpd, legacy):
    """/app/: the legacy application with PegaDMInject On; /plain/: without."""
    legacy.accept_encodings.clear()
    return module_httpd(app_location("/app/", legacy, "PegaDMInject On")
                        + app_location("/plain/", legacy), loglevel="info pegadm:debug")


def get(server, path, **headers):
    return server.request("GET", path, headers=headers)


def assert_injected(resp, page=PAGE, before=b"</body>", tag=TAG):
    assert resp.status == 200, resp
    assert resp.body == page.replace(before, tag + before, 1), resp.body
    assert resp.body.count(b"<script") == page.count(b"<script") + 1
    length = resp.header("Content-Length")
    assert length is None or int(length) == len(resp.body), resp


def test_one_tag_right_before_body_end_of_a_proxied_page(proxy):
    assert_injected(get(proxy, "/app/page.html"))
    assert "PEGADM100" in proxy.error_log()


def test_chunked_answer_with_body_end_split_over_pieces(proxy):
    resp = get(proxy, "/app/chunked.html")
    assert_injected(resp)
    assert resp.header("Content-Length") is None


@pytest.mark.parametrize("path, body, content_type", [
    ("/data.json", JSON_BODY, "application/json"),
    ("/image.png", PNG_BODY, "image/png"),
])
def test_no_tag_in_json_or_images(proxy, path, body, content_type):
    resp = get(proxy, "/app" + path)
    assert resp.status == 200
    assert resp.header("Content-Type") == content_type
    assert resp.body == body


@pytest.mark.parametrize("path", sorted(ALREADY))
def test_no_second_tag_in_a_page_that_loads_the_widget(proxy, path):
    resp = get(proxy, "/app" + path)
    assert resp.body == ALREADY[path]
    assert "PEGADM101" in proxy.error_log()


def test_xhtml_and_upper_case_end_tag(proxy):
    resp = get(proxy, "/app/page.xhtml")
    assert_injected(resp, XHTML, b"</BODY >")


def test_a_page_without_body_end_passes_unchanged(proxy):
    assert get(proxy, "/app/fragment.html").body == NO_BODY_END


def test_off_by_default(proxy, legacy):
    resp = get(proxy, "/plain/gzip.html", **{"Accept-Encoding": "gzip"})
    assert resp.header("Content-Encoding") == "gzip"
    assert gzip.decompress(resp.body) == PAGE
    assert get(proxy, "/plain/page.html").body == PAGE
    assert legacy.accept_encodings == ["gzip", "identity"]  # http.client's default


# What a browser sends when it loads a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_backend_is_asked_for_identity_and_the_tag_goes_in(proxy, legacy):
    resp = get(proxy, "/app/gzip.html", **{"Accept-Encoding": "gzip, br",
                                          "Accept": BROWSER_ACCEPT})
    assert resp.header("Content-Encoding") is None
    assert_injected(resp)
    assert legacy.accept_encodings == [None]


def test_a_backend_that_compresses_anyway_is_left_alone(proxy):
    resp = get(proxy, "/app/always-gzip.html", **{"Accept-Encoding": "gzip"})
    assert resp.header("Content-Encoding") == "gzip"
    assert gzip.decompress(resp.body) == PAGE
    assert re.search(r"PEGADM103: .*content-encoded", proxy.error_log())


def test_mod_deflate_still_compresses_for_the_client(module_httpd, legacy):
    """The filter runs before mod_deflate, and the client's Accept-Encoding
    is back in place by the time mod_deflate looks at it."""
    legacy.accept_encodings.clear()
    server = module_httpd(module_line("filter") + module_line("deflate") + app_location(
        "/app/", legacy, "PegaDMInject On", "AddOutputFilterByType DEFLATE text/html"))
    resp = get(server, "/app/gzip.html", **{"Accept-Encoding": "gzip", "Accept": BROWSER_ACCEPT})
    assert resp.header("Content-Encoding") == "gzip"
    body = gzip.decompress(resp.body)
    assert body == PAGE.replace(b"</body>", TAG + b"</body>")
    assert legacy.accept_encodings == [None]


def test_nonce_from_an_expression_escaped_and_omitted_when_empty(module_httpd, legacy):
    server = module_httpd(app_location("/app/", legacy, "PegaDMInject On",
                                       'PegaDMScriptNonce "%{HTTP:X-Nonce}"'))
    resp = get(server, "/app/page.html", **{"X-Nonce": 'n0nce"><img src=x>&'})
    assert_injected(resp, tag=b'<script src="/pegadm/bootstrap.js" '
                              b'nonce="n0nce&quot;&gt;&lt;img src=x&gt;&amp;" defer></script>')
    assert_injected(get(server, "/app/page.html"))


def test_bootstrap_url_is_configurable(module_httpd, legacy):
    server = module_httpd(app_location("/app/", legacy, "PegaDMInject On",
                                       "PegaDMBootstrapURL /chat/boot.js?v=2&x=1"))
    assert_injected(get(server, "/app/page.html"),
                    tag=b'<script src="/chat/boot.js?v=2&amp;x=1" defer></script>')


def test_static_and_ssi_pages_once_each_after_includes(module_httpd):
    """The tag goes into what mod_include produced, once, and not into the
    included subrequest. The include splits "</body>" in two ("</bo" in the
    page, "dy>" in the included file), so the halves reach the filter in
    separate passes and the first must be held back."""
    server = module_httpd(location("/site/", "PegaDMInject On", auth=False)
                          + location("/twice/", "PegaDMInject On",
                                     "SetOutputFilter PEGADM_INJECT", auth=False))
    end = PAGE.index(b"</body>")
    for sub in ("site", "twice"):
        os.makedirs(os.path.join(server.root, "htdocs", sub), mode=0o755)
        harness.write_file(os.path.join(server.root, "htdocs", sub, "page.html"), PAGE)
        harness.write_file(os.path.join(server.root, "htdocs", sub, "dy.html"), PAGE[end + 4:])
        harness.write_file(os.path.join(server.root, "htdocs", sub, "page.shtml"),
                           PAGE[:end + 4] + b'<!--#include virtual="dy.html" -->')
    for sub in ("site", "twice"):
        resp = get(server, "/%s/page.html" % sub)
        assert_injected(resp)
        assert int(resp.header("Content-Length")) == len(resp.body)
        assert_injected(get(server, "/%s/page.shtml" % sub))


@pytest.mark.parametrize("directive, message", [
    ("PegaDMInject maybe", "PegaDMInject"),
    ('PegaDMBootstrapURL "https://evil.example/b.js"', "PegaDMBootstrapURL"),
    ("PegaDMBootstrapURL //evil.example/b.js", "PegaDMBootstrapURL"),
    ("PegaDMBootstrapURL /a\"onload=\"x", "PegaDMBootstrapURL"),
    ('PegaDMScriptNonce "%{unknownfunc:x}"', "PegaDMScriptNonce"),
])
def test_misconfiguration_is_refused_at_start_up(config_test, directive, message):
    result = config_test(location("/app/", "PegaDMInject On", directive, auth=False))
    returncode, output = result
    assert returncode != 0, output
    assert message in output, output


# ---- in a real browser, behind a Content-Security-Policy with a nonce ----

CSP = ("Header set Content-Security-Policy "
       "\"expr=script-src 'nonce-%{md5:%{reqenv:UNIQUE_ID}}' 'strict-dynamic'\"")


def test_a_legacy_page_gets_a_working_chat_under_csp(module_httpd, legacy, plain_dm, chromium):
    server = module_httpd(
        module_line("unique_id")
        + pegadm_conf(plain_dm, extra=['PegaDMCustomerID "kiosk-7"'])
        + session_location(auth=False) + bootstrap_location()
        + app_location("/app/", legacy, "PegaDMInject On", CSP,
                       'PegaDMScriptNonce "%{md5:%{reqenv:UNIQUE_ID}}"')
        + app_location("/nononce/", legacy, "PegaDMInject On", CSP))
    chromium.get(server.origin + "/app/chunked.html")
    facts = chromium.open_chat()
    assert facts["customer"] == "kiosk-7"
    assert [c["sessionId"] for c in plain_dm.state()["creates"]] == [facts["session"]]
    assert chromium.run("return document.querySelectorAll("
                        "'script[src=\"/pegadm/bootstrap.js\"]').length") == 1

    # The same page without the nonce: the browser refuses the script.
    chromium.get(server.origin + "/nononce/page.html")
    chromium.wait(lambda d: any("Content Security Policy" in m and "bootstrap.js" in m
                                for m in chromium.console_messages()),
                  "the browser to refuse the script without a nonce")
    assert not chromium.has("pega-emu-launcher")


# ---- pages whose markup once took the tag where no script runs ----

BROKEN_PAGES = {
    # "<!--<script>" in a script: its first "</script>" does not end it
    "script.html": b'<!DOCTYPE html><html><body><p>report</p><script>'
                   b'var a = "<!--<script>", b = "</script></body>";</script>\n</body></html>\n',
    # the template's content is inert
    "template.html": b"<!DOCTYPE html><html><body><p>report</p>"
                     b"<template><p>row</p></body></template>\n</body></html>\n",
    # the only </body> is inert: the tag goes at the page's end
    "template-only.html": b"<!DOCTYPE html><html><body><p>report</p>"
                          b"<template><p>row</p></body></template></html>\n",
    # CDATA in SVG is text
    "svg.html": b"<!DOCTYPE html><html><body><svg><text><![CDATA[ a > b </body> ]]>"
                b"</text></svg>\n</body></html>\n",
    # an element of the page with the widget script's id
    "div.html": b'<!DOCTYPE html><html><body><div id="pega-wm-chat">chat goes here</div>'
                b"\n</body></html>\n",
}


def test_pages_that_broke_the_tag_get_a_working_widget_once(module_httpd, plain_dm, chromium):
    server = module_httpd(
        pegadm_conf(plain_dm, extra=['PegaDMCustomerID "kiosk-7"'])
        + session_location(auth=False) + bootstrap_location()
        + location("/pages/", "PegaDMInject On", auth=False))
    os.makedirs(os.path.join(server.root, "htdocs", "pages"), mode=0o755)
    for name, body in BROKEN_PAGES.items():
        harness.write_file(os.path.join(server.root, "htdocs", "pages", name), body)
    broken = {}
    for name in sorted(BROKEN_PAGES):
        chromium.get(server.origin + "/pages/" + name)
        try:
            chromium.wait(lambda d: d.find_elements("id", "pega-emu-launcher"), "the widget",
                          timeout=5)
        except AssertionError:
            broken[name] = "no widget"
            continue
        counts = chromium.run("return [document.querySelectorAll("
                              "'script[src=\"/pegadm/bootstrap.js\"]').length, "
                              "document.querySelectorAll('script#pega-wm-chat').length]")
        if counts != [1, 1]:
            broken[name] = "bootstrap and widget scripts: %s" % counts
    assert not broken, broken
