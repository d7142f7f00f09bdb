"""Upstream connections are reused: one httpd process makes many creates over
one TLS connection to the service instead of a handshake per call, under
each MPM (the emulator counts the connections it accepts)."""

import pytest

import pegadm_harness as harness
from pegadm_harness import assert_session, portal_conf, session_get

CUSTOMERS = 15

# One child process per MPM: every create comes from the same process.
ONE_PROCESS = {
    "event": "ServerLimit 1\nStartServers 1\nThreadsPerChild 25\nMaxRequestWorkers 25\n",
    "worker": "ServerLimit 1\nStartServers 1\nThreadsPerChild 25\nMaxRequestWorkers 25\n",
    "prefork": "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n",
}


@pytest.mark.parametrize("mpm", harness.MPMS)
def test_one_process_reuses_one_connection(module_httpd, dm, mpm):
    users = ["reuse-%d" % i for i in range(CUSTOMERS)]
    server = module_httpd(portal_conf(dm, ONE_PROCESS[mpm]), users=users, mpm=mpm)
    for user in users:
        assert_session(session_get(server, user))
    state = dm.state()
    assert len(state["creates"]) == CUSTOMERS
    assert len(state["private_data"]) == CUSTOMERS
    # 2 calls per customer; the state request above is one connection too.
    assert state["connections"] - 1 <= 2, state["connections"]
    assert state["tls_failures"] == 0
