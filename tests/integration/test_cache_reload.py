"""The default shmcb session cache outlives a reload: `apache2 -k graceful`
and `-k restart` keep every cached session (and the pegadm-cache mutex that
guards it) as long as the cache's provider and arguments are unchanged; a
different size or Mutex setting starts a fresh cache and says so; a stop
removes what the cache made; `apache2 -t` makes nothing."""

import os
import subprocess

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_session, same_origin_request, session_get

OLD = harness.WIDGET_SECRET
NEW = "the-rotated-secret-of-the-connection-0123456789"
USERS = ["alice", "bob", "carol"]
FRESH = "PEGADM404"


def site(dm, *server_extra):
    return harness.portal_conf(dm, server_extra=["PegaDMBreakerThreshold 0", *server_extra])


def reconfigure(server, conf):
    """New configuration text for the next reload, on the same port."""
    server.conf_body = conf
    harness.write_file(server.conf_path, harness.render_httpd_conf(
        server.root, server.port, conf, server.mpm, server.loglevel, server.load_pegadm))


def reload(server, how):
    """`apache2 -k graceful` or `-k restart`; returns once the new generation runs."""
    if how == "graceful":
        harness.graceful_restart(server)
        return
    marker = "resuming normal operations"
    before = server.error_log().count(marker)
    proc = subprocess.run([harness.APACHE_BIN, "-f", server.conf_path, "-k", how],
                          capture_output=True, env=harness.apache_env(server.env), timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    harness.wait_for(lambda: server.error_log().count(marker) > before, 30,
                     what="the restart to complete")


def sessions(server, users=USERS):
    return [assert_session(session_get(server, u)) for u in users]


@pytest.mark.parametrize("how", ["graceful", "restart"])
@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_a_reload_keeps_every_cached_session(module_httpd, dm, mpm, how):
    server = module_httpd(site(dm), users=USERS, mpm=mpm)
    before = sessions(server)
    reload(server, how)
    assert sessions(server) == before
    reload(server, how)
    assert sessions(server) == before
    assert [len(dm.creates_for(u)) for u in USERS] == [1, 1, 1]
    assert FRESH not in server.error_log()
    # forgetting still works on the kept cache
    assert same_origin_request(server, "DELETE", "alice").status == 204
    assert assert_session(session_get(server, "alice")) != before[0]


def test_a_different_size_starts_a_fresh_cache(module_httpd, dm):
    server = module_httpd(site(dm, "PegaDMCacheCustomers 1000"), users=USERS, mpm="prefork")
    alice = assert_session(session_get(server, "alice"))
    reconfigure(server, site(dm, "PegaDMCacheCustomers 2000"))
    harness.graceful_restart(server)
    assert assert_session(session_get(server, "alice")) != alice
    assert len(dm.creates_for("alice")) == 2
    fresh = [line for line in server.error_log().splitlines() if FRESH in line]
    assert len(fresh) == 1, server.error_log()
    assert "[pegadm:info]" in fresh[0], fresh[0]
    # and the new one is kept in turn
    again = assert_session(session_get(server, "alice"))
    harness.graceful_restart(server)
    assert assert_session(session_get(server, "alice")) == again
    assert len(dm.creates_for("alice")) == 2


def lock_files(path):
    return sorted(os.listdir(path))


def test_the_mutex_directive_tunes_the_kept_mutex(module_httpd, dm, workdir):
    locks = harness.make_public_dir(workdir, "locks-")
    other = harness.make_public_dir(workdir, "locks-other-")
    conf = site(dm) + "Mutex flock:%s pegadm-cache\n"
    assert harness.config_test(conf % locks, workdir=workdir).returncode == 0
    assert lock_files(locks) == [], "apache2 -t makes no mutex"

    server = module_httpd(conf % locks, users=USERS, mpm="prefork")
    alice = assert_session(session_get(server, "alice"))
    made = lock_files(locks)
    assert len(made) == 1 and made[0].startswith("pegadm-cache"), made
    harness.graceful_restart(server)
    assert lock_files(locks) == made, "the same mutex serves the next generation"
    assert assert_session(session_get(server, "alice")) == alice

    # `apache2 -t` beside the running server changes nothing of it
    assert harness.config_test(conf % locks, workdir=workdir).returncode == 0
    assert lock_files(locks) == made
    assert assert_session(session_get(server, "alice")) == alice

    # another mutex setting: a fresh cache under a fresh mutex
    reconfigure(server, conf % other)
    harness.graceful_restart(server)
    assert lock_files(locks) == []
    assert len(lock_files(other)) == 1
    assert assert_session(session_get(server, "alice")) != alice
    assert FRESH in server.error_log()
    server.stop()
    assert lock_files(other) == [], "a stop removes the mutex"
    assert not server.crashes()


def test_rotating_the_secret_keeps_cached_sessions(module_httpd, dm):
    server = module_httpd(site(dm), users=USERS, mpm="prefork")
    alice = assert_session(session_get(server, "alice"))
    dm.set_secret(NEW)
    reconfigure(server, site(dm, 'PegaDMJWTSecretNext "%s"' % NEW))
    harness.graceful_restart(server)
    assert assert_session(session_get(server, "alice")) == alice
    bob = assert_session(session_get(server, "bob"))
    assert bob != alice
    assert [len(dm.creates_for(u)) for u in ("alice", "bob")] == [1, 1]
    server.stop()
    text = server.error_log() + server.access_log()
    assert OLD not in text and NEW not in text


LOAD_MEMCACHE = "LoadModule socache_memcache_module %s/mod_socache_memcache.so\n" % (
    harness.APACHE_MODULES)


def test_switching_to_memcached_and_back(module_httpd, dm, memcached):
    server = module_httpd(site(dm), users=USERS, mpm="prefork")
    alice = assert_session(session_get(server, "alice"))
    reconfigure(server, LOAD_MEMCACHE + site(dm, "PegaDMCache memcache:127.0.0.1:%d"
                                             % memcached.port))
    harness.graceful_restart(server)
    in_memcached = assert_session(session_get(server, "alice"))
    assert in_memcached != alice
    harness.graceful_restart(server)
    assert assert_session(session_get(server, "alice")) == in_memcached
    # back to shmcb: the one dropped on the way is not brought back
    reconfigure(server, site(dm))
    harness.graceful_restart(server)
    assert assert_session(session_get(server, "alice")) not in (alice, in_memcached)
    assert len(dm.creates_for("alice")) == 3
    assert FRESH not in server.error_log()
    assert not server.crashes()
