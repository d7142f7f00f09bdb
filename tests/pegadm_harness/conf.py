"""Configuration snippets the tests put into an httpd: <Location> blocks
behind Basic auth, the module's server-level directives pointing at the
emulator, the usual test site (portal_conf) and a node of several sharing a
cache server (cache_node_conf)."""

from .settings import BOOTSTRAP_PATH, SESSION_PATH, WIDGET_ID, WIDGET_SECRET


AUTH_LINES = (
    "AuthType Basic",
    'AuthName "pegadm tests"',
    "AuthBasicProvider file",
    "AuthUserFile conf/htpasswd",
    "Require valid-user",
)


def location(path, *directives, auth=True):
    """A <Location> block; with auth=True it sits behind Basic auth against
    the instance's conf/htpasswd."""
    lines = ["<Location %s>" % path]
    lines += ["    " + d for d in (AUTH_LINES if auth else ())]
    lines += ["    " + d for d in directives]
    lines.append("</Location>")
    return "\n".join(lines) + "\n"


def session_location(path=SESSION_PATH, *directives, auth=True):
    return location(path, "SetHandler pegadm-session", *directives, auth=auth)


def bootstrap_location(path=BOOTSTRAP_PATH, *directives):
    return location(path, "SetHandler pegadm-bootstrap", *directives, auth=False)


def pegadm_conf(emulator=None, widget=WIDGET_ID, secret=WIDGET_SECRET,
                service_url=None, ca_file=None, extra=()):
    """Server-level pegadm directives pointing at the emulator."""
    lines = ["PegaDMWidgetID %s" % widget]
    if secret is not None:
        lines.append('PegaDMJWTSecret "%s"' % secret)
    if service_url is None and emulator is not None:
        service_url = emulator.url
    if service_url:
        lines.append("PegaDMServiceURL %s" % service_url)
    ca_file = ca_file or (emulator.ca_file if emulator is not None else None)
    if ca_file:
        lines.append('PegaDMCAFile "%s"' % ca_file)
    lines += list(extra)
    return "\n".join(lines) + "\n"


def portal_conf(emulator=None, *blocks, service_url=None, server_extra=(), **kwargs):
    """The usual test site: pegadm at server level, the JSON endpoint behind
    Basic auth, the public bootstrap script, then any extra blocks."""
    return (pegadm_conf(emulator, service_url=service_url, extra=server_extra, **kwargs)
            + session_location() + bootstrap_location() + "".join(blocks))


def cache_node_conf(emulator, cache, *blocks, server_extra=()):
    """One node of several sharing the cache server `cache` (caches.py):
    the usual test site with an eager /eager/ location, then any blocks."""
    return cache.load_line + portal_conf(emulator, location("/eager/", "PegaDM On"), *blocks,
                                         server_extra=[cache.directive, *server_extra])


def shared_cache_conf(emulator, cache_value, *blocks, server_extra=()):
    """One node of several sharing the cache servers of `cache_value`
    (PegaDMCache's value: redis://..., rediss://..., memcache://...),
    served by the module's own clients: the usual test site with an eager
    /eager/ location, then any blocks."""
    return portal_conf(emulator, location("/eager/", "PegaDM On"), *blocks,
                       server_extra=['PegaDMCache "%s"' % cache_value, *server_extra])


# Server-level directives logging the PID that served each request, and
# the kept connection (KeptConnection.tag) it came on.
PIDS_LOG = ('LogFormat "%P %>s %m %U %{X-Test-Connection}i" pegadm_pids',
            "CustomLog logs/pids.log pegadm_pids")
