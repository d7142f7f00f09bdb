"""The cache servers the shared-cache tests stand on behave as those tests
assume: Redis over TLS only checks the chain, the password and the client
certificate; the cluster serves and moves slots; the hanging servers hang
and come back."""

import socket
import ssl

import pytest

from pegadm_harness import (BlackHole, CacheFront, NeverConnects, RedisCluster, RedisServer, TLSRedisServer,
                            paused)


@pytest.fixture(scope="module")
def tls_redis(workdir, cache_ca):
    server = TLSRedisServer(workdir, cache_ca, users={"pegadm": "acl-pass-0123456789"},
                            client_certs=True).start()
    yield server
    server.stop()


def tls_ping(server, ctx, host="127.0.0.1"):
    with socket.create_connection((host, server.port), timeout=2) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_tls_redis_checks_chain_client_certificate_and_password(tls_redis, cache_ca):
    assert tls_ping(tls_redis, cache_ca.client_context(client_cert=True)).startswith(b"-NOAUTH")
    wrong_ca = ssl.create_default_context(cafile=cache_ca.other_ca_cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_ping(tls_redis, wrong_ca)
    checked = ssl.create_default_context(cafile=cache_ca.ca_cert)
    checked.load_cert_chain(cache_ca.client_cert, cache_ca.client_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_ping(tls_redis, checked, host="localhost")  # not in the certificate
    assert tls_ping(tls_redis, checked, host="::1")
    with pytest.raises((ssl.SSLError, OSError)):
        tls_ping(tls_redis, cache_ca.client_context(client_cert=False))
    assert tls_redis.cli("-n", "3", "SET", "k", "v") == "OK"
    assert tls_redis.cli("-n", "3", "GET", "k") == "v"
    tls_redis.users["pegadm"] = "a-wrong-password"
    try:
        assert tls_redis.cli("PING", check=False).startswith("NOAUTH")
    finally:
        tls_redis.users["pegadm"] = "acl-pass-0123456789"


def test_plain_client_gets_nothing_from_the_tls_port(tls_redis):
    with socket.create_connection(("127.0.0.1", tls_redis.port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        try:
            assert not sock.recv(64).startswith(b"+PONG")
        except OSError:
            pass


def test_cluster_serves_and_moves_a_slot(workdir):
    cluster = RedisCluster(workdir).start()
    try:
        owner = cluster.owner(cluster.slot("{alice}mark"))
        assert owner.cli("SET", "{alice}mark", "x") == "OK"
        other = next(n for n in cluster.nodes if n is not owner)
        assert other.cli("GET", "{alice}mark").startswith("MOVED")
        cluster.move_slot(cluster.slot("{alice}mark"), other)
        assert cluster.owner(cluster.slot("{alice}mark")) is other
        assert other.cli("GET", "{alice}mark") == "x"
        assert owner.cli("GET", "{alice}mark").startswith("MOVED")
        assert cluster.keys() == {"{alice}mark": other}
    finally:
        cluster.stop()


def test_hanging_servers_hang_and_come_back(workdir):
    hole, never = BlackHole(), NeverConnects()
    redis = RedisServer(workdir).start()
    try:
        with socket.create_connection(("127.0.0.1", hole.port), timeout=0.3) as sock:
            sock.sendall(b"PING\r\n")
            with pytest.raises(socket.timeout):
                sock.recv(1)
        with pytest.raises(socket.timeout):
            socket.create_connection(("127.0.0.1", never.port), timeout=0.3)
        with paused(redis):
            with socket.create_connection(("127.0.0.1", redis.port), timeout=0.3) as sock:
                sock.sendall(b"PING\r\n")
                with pytest.raises(socket.timeout):
                    sock.recv(1)
        assert redis.answers()
    finally:
        hole.stop()
        never.stop()
        redis.stop()


def test_cache_front_relays_hangs_and_never_connects(workdir):
    redis = RedisServer(workdir).start()
    front = CacheFront(redis.port)
    try:
        def ping(timeout=1):
            with socket.create_connection(("127.0.0.1", front.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64)

        assert ping() == b"+PONG\r\n"
        kept = socket.create_connection(("127.0.0.1", front.port), timeout=0.3)
        front.hang()
        with pytest.raises(socket.timeout):
            ping(timeout=0.3)
        front.resume()
        assert ping() == b"+PONG\r\n"
        front.never_connect()
        with pytest.raises(OSError):  # reset: the host rebooted
            kept.sendall(b"PING\r\n")
            assert not kept.recv(64)
        with pytest.raises(socket.timeout):
            ping(timeout=0.3)
        front.resume()
        assert ping() == b"+PONG\r\n"
    finally:
        kept.close()
        front.stop()
        redis.stop()
