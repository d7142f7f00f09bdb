"""A session never leaves the privacy of the top-level answer (issue 23,
F14): a page that includes the session endpoint or an eager page through
mod_include, under a real mod_cache, is never stored with a customer's
session in it; eager and session answers carry no field a CDN caches by
(CDN-Cache-Control, Surrogate-Control, ...) and say Pragma: no-cache."""

import os

import pegadm_harness as harness
from pegadm_harness import assert_session, location, parse_vars, portal_conf, session_get

CACHE = """\
LoadModule cache_module {mods}/mod_cache.so
LoadModule cache_disk_module {mods}/mod_cache_disk.so
CacheRoot "{root}"
CacheEnable disk /
CacheQuickHandler Off
"""

INCLUDES_SESSION = 'before <!--#include virtual="/pegadm/session" --> after\n'
INCLUDES_EAGER = 'before <!--#include virtual="/eager/session.shtml" --> after\n'
PUBLIC = 'Header set Cache-Control "public, max-age=300"'
CDN_FIELDS = ('Header set CDN-Cache-Control "max-age=600"',
              'Header set Surrogate-Control "max-age=600"',
              'Header set Cloudflare-CDN-Cache-Control "max-age=600"')


def cached_site(dm, workdir):
    root = harness.make_public_dir(workdir, "disk-cache-")
    os.chmod(root, 0o777)
    return CACHE.format(mods=harness.APACHE_MODULES, root=root) + portal_conf(
        dm, location("/eager/", "PegaDM On"),
        location("/open/", PUBLIC, auth=False))


def write_pages(server):
    for name, text in (("session-incl.shtml", INCLUDES_SESSION),
                       ("eager-incl.shtml", INCLUDES_EAGER)):
        harness.write_file(os.path.join(server.root, "htdocs", "open", name), text)


def test_an_included_session_is_never_cached_for_others(module_httpd, dm, workdir):
    server = module_httpd(cached_site(dm, workdir))
    write_pages(server)
    sid = assert_session(session_get(server, "alice"))
    alice = server.request("GET", "/open/session-incl.shtml", user="alice")
    assert alice.status == 200, alice
    for user in ("bob", None):
        other = server.request("GET", "/open/session-incl.shtml", user=user)
        assert sid.encode() not in other.body, (user, other)
    assert assert_session(session_get(server, "bob")) != sid


def test_an_included_eager_page_is_never_cached_for_others(module_httpd, dm, workdir):
    server = module_httpd(cached_site(dm, workdir))
    write_pages(server)
    sid = assert_session(session_get(server, "alice"))
    server.request("GET", "/open/eager-incl.shtml", user="alice")
    for user in ("bob", None):
        other = server.request("GET", "/open/eager-incl.shtml", user=user)
        assert sid.encode() not in other.body, (user, other)


def test_eager_and_session_answers_drop_cdn_fields_and_say_no_cache(module_httpd, dm):
    server = module_httpd(portal_conf(dm, location("/eager/", "PegaDM On", *CDN_FIELDS),
                                      location("/pegadm/session", *CDN_FIELDS)))
    page = server.request("GET", "/eager/session.shtml", user="alice")
    assert parse_vars(page.body)["SID"], page
    answer = session_get(server, "alice")
    assert_session(answer)
    for resp in (page, answer):
        for field in ("CDN-Cache-Control", "Surrogate-Control", "Cloudflare-CDN-Cache-Control"):
            assert resp.header(field) is None, (field, resp)
        assert resp.header("Pragma") == "no-cache", resp
