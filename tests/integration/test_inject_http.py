"""PegaDMInject keeps HTTP's rules: HEAD announces what GET sends (or no
length), the stored page's ETag does not name the changed one, pages pass
on as they come (a CGI that waits reaches the client in parts, a large page
costs a child little memory), a client's Accept-Encoding stays where no
page is asked for, pages in charsets whose text is not ASCII bytes, and
answers to other methods than GET and HEAD, pass unchanged."""

import os
import socket
import time

import pytest

import pegadm_harness as harness
from pegadm_harness import location

from test_inject import BROWSER_ACCEPT, PAGE, TAG, LegacyApp, app_location, assert_injected

STREAM_FIRST = b"<!DOCTYPE html>\n<html><body><p>first part</p>\n"
STREAM_REST = b"<p>second part</p>\n</body></html>\n"
# Sends its page in two parts with a pause between, as a slow report does.
STREAM_CGI = b"""#!/bin/sh
printf 'Content-Type: text/html\\r\\n\\r\\n'
printf '%s' '""" + STREAM_FIRST + b"""'
sleep 2
printf '%s' '""" + STREAM_REST + b"""'
"""
PAGE_CGI = b"""#!/bin/sh
cat >/dev/null
printf 'Content-Type: text/html\\r\\n\\r\\n'
printf '%s' '""" + PAGE + b"""'
"""


def write_htdocs(server, path, body, mode=0o644):
    full = os.path.join(server.root, path)
    os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
    harness.write_file(full, body)
    os.chmod(full, mode)
    return full


@pytest.fixture
def site(module_httpd):
    """/site/: static pages and CGI scripts with PegaDMInject On; /plain/: the same, Off."""
    server = module_httpd("FileETag MTime Size\n"
                          + location("/site/", "PegaDMInject On", auth=False)
                          + location("/cgi-bin/", "PegaDMInject On", auth=False),
                          loglevel="info pegadm:debug")
    an_hour_ago = time.time() - 3600
    for sub in ("site", "plain"):  # one ETag for both copies: same time, same size
        path = write_htdocs(server, "htdocs/%s/page.html" % sub, PAGE)
        os.utime(path, (an_hour_ago, an_hour_ago))
    write_htdocs(server, "cgi-bin/stream.cgi", STREAM_CGI, 0o755)
    write_htdocs(server, "cgi-bin/page.cgi", PAGE_CGI, 0o755)
    return server


def test_head_announces_the_length_get_sends_or_none(site):
    got = site.request("GET", "/site/page.html")
    assert_injected(got)
    head = site.request("HEAD", "/site/page.html")
    assert head.status == 200
    assert head.header("Content-Length") in (None, got.header("Content-Length")), head
    assert head.header("Content-Length") != str(len(PAGE))


def test_the_stored_pages_etag_does_not_name_the_changed_one(site):
    stored = site.request("GET", "/plain/page.html").header("ETag")
    assert stored and stored.startswith('"'), stored
    etag = site.request("GET", "/site/page.html").header("ETag")
    assert etag is None or (etag.startswith("W/") and etag[2:] != stored), etag
    assert site.request("HEAD", "/site/page.html").header("ETag") == etag


def test_a_streaming_cgi_reaches_the_client_in_two_parts(site):
    """The CGI waits 2 s between its parts: the first is at the client well
    before the second (a bound, not a benchmark)."""
    sock = socket.create_connection(("127.0.0.1", site.port), timeout=10)
    try:
        sock.sendall(b"GET /cgi-bin/stream.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Connection: close\r\n\r\n")
        start, data, first_at = time.monotonic(), b"", None
        while time.monotonic() - start < 10:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
            if first_at is None and b"first part" in data:
                first_at = time.monotonic() - start
        end_at = time.monotonic() - start
    finally:
        sock.close()
    assert b"second part" in data and TAG + b"</body>" in data, data
    assert first_at is not None and first_at < end_at - 1.0, (first_at, end_at)


def test_only_get_and_head_answers_are_changed(site):
    assert_injected(site.request("GET", "/cgi-bin/page.cgi"))
    resp = site.request("POST", "/cgi-bin/page.cgi", body=b"x=1",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200 and resp.body == PAGE
    assert "PEGADM108" in site.error_log()


def test_translate_f_gets_the_page_as_stored(site):
    resp = site.request("GET", "/site/page.html", headers={"Translate": "f"})
    assert resp.body == PAGE
    assert resp.header("Content-Length") == str(len(PAGE))


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def test_a_large_page_costs_the_child_little_memory(module_httpd):
    """One prefork child serves a 32 MiB page whose </body> is at its end:
    its peak resident size grows by far less than the page."""
    size = 32 * 1024 * 1024
    server = module_httpd(
        "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\n"
        "MaxRequestWorkers 1\nLogFormat %P pid\nCustomLog logs/pid.log pid\n"
        + location("/site/", "PegaDMInject On", auth=False), mpm="prefork")
    line = b"<p>A long statement of account, line after line.</p>\n"
    body = b"<html><body>\n" + line * ((size - 30) // len(line)) + b"</body></html>\n"
    write_htdocs(server, "htdocs/site/large.html", body)
    write_htdocs(server, "htdocs/site/page.html", PAGE)
    assert_injected(server.request("GET", "/site/page.html"))
    harness.wait_for(lambda: server.read(os.path.join(server.root, "logs", "pid.log")).strip(),
                     5, 0.1, "the pid log")
    pid = int(server.read(os.path.join(server.root, "logs", "pid.log")).split()[-1])
    before = vm_kib(pid, "VmHWM")
    resp = server.request("GET", "/site/large.html", timeout=60)
    assert len(resp.body) == len(body) + len(TAG)
    assert resp.body.endswith(TAG + b"</body></html>\n")
    grown = vm_kib(pid, "VmHWM") - before
    assert grown < size // 4 // 1024, "the child grew by %d KiB" % grown


@pytest.fixture
def legacy():
    app = LegacyApp()
    yield app
    app.stop()


def test_accept_encoding_is_kept_where_no_page_is_asked_for(module_httpd, legacy):
    server = module_httpd(app_location("/app/", legacy, "PegaDMInject On"))
    for accept in ("application/json", "image/avif,image/webp,*/*;q=0.8", "*/*"):
        resp = server.request("GET", "/app/data.json",
                              headers={"Accept": accept, "Accept-Encoding": "gzip"})
        assert resp.status == 200
    assert legacy.accept_encodings == ["gzip"] * 3
    legacy.accept_encodings.clear()
    assert_injected(server.request("GET", "/app/page.html", headers={
        "Accept": BROWSER_ACCEPT, "Accept-Encoding": "gzip"}))
    assert legacy.accept_encodings == [None]


# Code units whose bytes read as "</body>>" in ASCII: 0x3C2F 0x626F 0x6479 0x3E3E.
UTF16_PAGE = ("<html><body><p>".encode("utf-16-be") + b"</body>>"
              + "</p></body></html>".encode("utf-16-be"))


@pytest.mark.parametrize("content_type, body, message", [
    ("text/html; charset=UTF-16BE", UTF16_PAGE, "PEGADM107"),
    ("text/html", b"\xfe\xff" + UTF16_PAGE, "PEGADM109"),
    ('text/html; charset="ISO-2022-JP"', PAGE, "PEGADM107"),
], ids=["utf-16be", "utf-16-bom", "iso-2022-jp"])
def test_pages_whose_text_is_not_ascii_bytes_are_left_alone(module_httpd, content_type, body,
                                                             message):
    server = module_httpd(location("/site/", "PegaDMInject On",
                                   "ForceType '%s'" % content_type, auth=False),
                          loglevel="info pegadm:debug")
    write_htdocs(server, "htdocs/site/page.html", body)
    resp = server.request("GET", "/site/page.html")
    assert resp.header("Content-Type").lower() == content_type.lower()
    assert resp.body == body
    assert message in server.error_log()


def module_line(name):
    return "LoadModule %s_module %s/mod_%s.so\n" % (name, harness.APACHE_MODULES, name)


def test_a_webdav_document_edited_and_saved_back_stays_without_the_tag(module_httpd):
    """GET, edit, PUT, as a WebDAV client does: the stored file gets the
    edit and no tag."""
    server = module_httpd(module_line("dav") + module_line("dav_fs")
                          + "DavLockDB davlock/db\n"
                          + location("/dav/", "Dav On", "PegaDMInject On", auth=False),
                          loglevel="info pegadm:debug")
    path = write_htdocs(server, "htdocs/dav/page.html", PAGE)
    os.chmod(os.path.dirname(path), 0o777)  # the children write it back
    os.chmod(path, 0o666)
    os.makedirs(os.path.join(server.root, "davlock"), mode=0o777)
    os.chmod(os.path.join(server.root, "davlock"), 0o777)
    got = server.request("GET", "/dav/page.html")
    assert got.status == 200
    put = server.request("PUT", "/dav/page.html",
                         body=got.body.replace(b"Nothing here", b"Edited: nothing here"),
                         headers={"Content-Type": "text/html"})
    assert put.status in (200, 201, 204), put
    with open(path, "rb") as fh:
        assert fh.read() == PAGE.replace(b"Nothing here", b"Edited: nothing here")
    assert "PEGADM108" in server.error_log()
