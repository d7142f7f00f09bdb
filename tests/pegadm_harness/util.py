"""Small utilities: public temporary directories, free loopback ports,
bounded polling and file writing."""

import os
import shutil
import socket
import tempfile
import time


def make_public_dir(parent=None, prefix="pegadm-it-"):
    """mkdtemp is 0700; httpd children run as www-data and must traverse it."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(path, 0o755)
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def to_bytes(value):
    # surrogateescape: a test can write a byte that is not UTF-8 ("\udce9" is 0xE9)
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def write_file(path, data, mode=0o644):
    with open(path, "wb") as fh:
        fh.write(to_bytes(data))
    os.chmod(path, mode)
    return path


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
