"""Small utilities: public temporary directories, free loopback ports,
bounded polling, calls run at once on threads, file writing, loading a
Python file, stopping the processes the harness starts and serving from a
thread."""

import importlib.util
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

from .settings import STOP_TIMEOUT


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


def run_together(calls, timeout=60):
    """Runs each callable on a thread of its own, all released at once by
    one barrier; returns what each returned, in order (the exception it
    raised in its place). Fails if any is still running after timeout."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        barrier.wait(timeout=10)
        try:
            results[index] = call()
        except Exception as err:  # the caller looks at it with the others
            results[index] = err

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), \
        "calls still running after %ds" % timeout
    return results


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


def port_answers(port):
    """Whether something accepts connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def children_of(pid):
    """PIDs whose parent is `pid` (from /proc: no psutil on a plain Debian)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                # the command name is in parentheses and may hold spaces
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.add(int(entry))
    return pids


def stop_process(proc, group=False, timeout=STOP_TIMEOUT):
    """SIGTERM, bounded wait, then SIGKILL (its process group with group=True,
    for a process started with start_new_session)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout)


def load_source(name, path):
    """Imports the Python file `path` as module `name`: the emulator, its CA
    and the demo's database live in folders that are no packages."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


class LoopbackServer:
    """A socketserver on a free port of 127.0.0.1, serving from a daemon
    thread; its handlers reach this object as self.server.owner."""

    server_class = socketserver.ThreadingTCPServer

    def serve(self, handler):
        self.server = self.server_class(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.owner = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
