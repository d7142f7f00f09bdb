"""The test harness of mod_pegadm: a real httpd, the Pega DM emulator and the
servers around them, driven from pytest (the fixtures are in plugin.py) and
from the benchmarks (bench/lib/pegabench.py). Every wait is bounded and all
traffic stays on 127.0.0.1.

    settings    paths (module, httpd, emulator), test widgets, timeouts
    util        temporary directories, free ports, bounded polling, calls run
                at once, processes, servers in a thread
    client      http_request, Response, KeptConnection, session requests
    conf        configuration snippets: location(), pegadm_conf(), portal_conf(),
                cache_node_conf(), shared_cache_conf()
    httpd       server root and httpd.conf, Httpd, config_test, graceful_restart
    emulator    the DM emulator subprocess and its throwaway CA
    backends    echo backend, CONNECT proxy, a port that refuses connections
    caches      a fake memcached, real redis-server and memcached, Redis over
                TLS with a throwaway CA, a Redis Cluster, servers that hang
    assertions  assert_session, assert_json_error, parse_vars, ...
    sanitizers  the environment and reports of a sanitizer build
    browser     headless chromium and the demo portal (needs selenium; not
                imported here)
    idp         an OpenID provider and a SAML identity provider on loopback,
                a portal behind them (needs selenium; not imported here)
    plugin      the pytest fixtures (loaded by tests/conftest.py)

Everything public but browser, idp and plugin can be imported from the package
itself (`from pegadm_harness import assert_session`).
"""

from .settings import (APACHE_BIN, APACHE_MODULES, BOOTSTRAP_PATH, EMULATOR_DIR,
                       EMULATOR_SCRIPT, MODULE_PATH, OTHER_WIDGET_ID, OTHER_WIDGET_SECRET,
                       PASSWORD, REPO_ROOT, REQUEST_TIMEOUT, SESSION_PATH, START_TIMEOUT,
                       STOP_TIMEOUT, WIDGET_ID, WIDGET_SECRET)
from .util import (LoopbackServer, children_of, free_port, load_source, make_public_dir,
                   port_answers, remove_tree, run_together, stop_process, to_bytes, wait_for,
                   write_file)
from .client import (basic_auth_header, http_request, KeptConnection, Response,
                     same_origin_request, session_get)
from .conf import (AUTH_LINES, PIDS_LOG, bootstrap_location, cache_node_conf, location,
                   pegadm_conf, portal_conf, session_location, shared_cache_conf)
from .httpd import (BASE_MODULES, CGI_SCRIPT, DOCUMENT_ROOT, MPMS, MPM_TUNING, SSI_DIRS, SSI_PAGE,
                    allow_core_dumps, apache_env, backtrace, config_test, ConfigTestResult,
                    graceful_restart, htpasswd_line, Httpd, load_module_lines,
                    populate_server_root, render_httpd_conf, write_htpasswd)
from .emulator import Emulator, load_ca_module, load_emulator_module
from .backends import ClosedPort, ConnectProxy, EchoBackend, echoed_headers
from .caches import (BlackHole, CacheCA, CacheFront, CacheServer, FakeMemcached, Memcached, NeverConnects,
                     RedisCluster, RedisServer, TLSRedisServer, memcache_url, paused)
from .assertions import (SESSION_ID_RE, assert_json_error, assert_one_child_each,
                         assert_protective_headers, assert_retry_after, assert_session,
                         children_serving, message_levels, parse_vars, pegadm_log_lines,
                         pegadm_warnings, sessions_at_once)
from .sanitizers import (SANITIZER_LOGS, SANITIZER_RUNTIME, sanitizer_env,
                         sanitizer_reports)

__all__ = [
    "APACHE_BIN", "APACHE_MODULES", "AUTH_LINES", "BASE_MODULES", "BOOTSTRAP_PATH",
    "BlackHole", "CGI_SCRIPT", "CacheCA", "CacheFront", "DOCUMENT_ROOT", "CacheServer", "ClosedPort", "ConfigTestResult",
    "ConnectProxy", "EMULATOR_DIR", "EMULATOR_SCRIPT", "EchoBackend", "Emulator",
    "FakeMemcached", "Httpd", "KeptConnection", "LoopbackServer", "MODULE_PATH", "MPMS",
    "MPM_TUNING", "Memcached", "NeverConnects", "OTHER_WIDGET_ID", "OTHER_WIDGET_SECRET", "PASSWORD", "PIDS_LOG",
    "REPO_ROOT", "REQUEST_TIMEOUT", "RedisCluster", "RedisServer", "Response", "SANITIZER_LOGS",
    "SANITIZER_RUNTIME", "SESSION_ID_RE", "SESSION_PATH", "SSI_DIRS", "SSI_PAGE",
    "START_TIMEOUT", "STOP_TIMEOUT", "TLSRedisServer", "WIDGET_ID", "WIDGET_SECRET", "allow_core_dumps",
    "apache_env", "assert_json_error", "sessions_at_once", "assert_one_child_each", "assert_protective_headers",
    "assert_retry_after", "assert_session", "backtrace", "basic_auth_header",
    "bootstrap_location", "cache_node_conf", "children_of", "children_serving", "config_test",
    "echoed_headers", "free_port", "graceful_restart", "htpasswd_line", "http_request",
    "load_ca_module", "load_emulator_module", "load_module_lines", "load_source", "location",
    "make_public_dir", "memcache_url", "paused", "message_levels", "parse_vars", "pegadm_conf", "pegadm_log_lines",
    "pegadm_warnings", "populate_server_root", "port_answers", "portal_conf", "remove_tree",
    "render_httpd_conf", "run_together", "same_origin_request", "sanitizer_env",
    "sanitizer_reports", "session_get", "session_location", "shared_cache_conf", "stop_process", "to_bytes",
    "wait_for", "write_file", "write_htpasswd",
]
