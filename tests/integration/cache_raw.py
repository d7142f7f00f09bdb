"""Raw access to the real Redis and memcached servers of cache_servers.py,
as a cache writer has it: list the keys, read a value as stored, write any
bytes back (with or without an expiry), bypassing httpd entirely."""

import socket
from urllib.parse import unquote

TIMEOUT = 5.0


class _Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n + 2:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("cache server closed the connection")
        self.buf += chunk

    def close(self):
        self.sock.close()


class RawMemcached:
    def __init__(self, server):
        self.port = server.port

    def _run(self, fn):
        conn = _Conn(self.port)
        try:
            return fn(conn)
        finally:
            conn.close()

    def keys(self):
        def run(conn):
            # one "key=... exp=..." line per item, ended by \n alone, then END
            conn.send(b"lru_crawler metadump all\r\n")
            while not conn.buf.endswith(b"END\r\n"):
                conn._more()
            found = []
            for line in conn.buf.split(b"\n"):
                fields = dict(f.split(b"=", 1) for f in line.split() if b"=" in f)
                if b"key" in fields:
                    found.append(unquote(fields[b"key"].decode()))
            return found
        return self._run(run)

    def get(self, key):
        def run(conn):
            conn.send(b"get %s\r\n" % key.encode())
            head = conn.line()
            if head == b"END":
                return None
            data = conn.exactly(int(head.split()[3]))
            conn.line()  # END
            return data
        return self._run(run)

    def set(self, key, value, expire=0):
        def run(conn):
            conn.send(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), expire, len(value), value))
            assert conn.line() == b"STORED"
        return self._run(run)


class RawRedis:
    def __init__(self, server):
        self.port = server.port

    def _command(self, *args):
        conn = _Conn(self.port)
        try:
            parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
            conn.send(b"*%d\r\n" % len(parts)
                      + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            return self._reply(conn)
        finally:
            conn.close()

    def _reply(self, conn):
        line = conn.line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            return None if int(rest) < 0 else conn.exactly(int(rest))
        if kind == b"*":
            return [self._reply(conn) for _ in range(int(rest))]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest

    def keys(self):
        return [k.decode() for k in self._command("KEYS", "*")]

    def get(self, key):
        return self._command("GET", key)

    def set(self, key, value, expire=0):
        args = ["SET", key, value] + (["EX", expire] if expire else [])
        assert self._command(*args) == b"OK"

    def replace_with_list(self, key):
        self._command("DEL", key)
        self._command("RPUSH", key, b"not a string")


RAW = {"memcache": RawMemcached, "redis": RawRedis}
