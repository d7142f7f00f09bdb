"""scripts/demo started with a real connection's variables: its start-up
message names the two settings of the Web Messaging connection it relies on
and the service URL it uses, and the portal comes up although the service
cannot be reached (the page needs no session until someone logs in)."""

import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

import pegadm_harness as harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "scripts", "demo")
SERVICE = "https://127.0.0.1:1"  # a closed loopback port: the service is unreachable
BANNER_END = "Ctrl-C\n"
START_LIMIT = 600  # the demo installs what is missing and builds first


class Demo:
    """scripts/demo running in its own process group, its output collected."""

    def __init__(self, env):
        self.proc = subprocess.Popen(
            ["bash", DEMO], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.lines = []
        self.banner = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.endswith(BANNER_END):
                self.banner.set()
        self.banner.set()  # ended without one: the caller looks at the output

    def output(self):
        return "".join(self.lines)

    def stop(self):
        """SIGTERM, as Ctrl-C's sibling: the demo stops httpd itself."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.reader.join(10)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read().decode("utf-8", "replace")


def test_real_connection_start_names_the_pega_settings():
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEGADM_") and k != "PORT"}
    env.update(PORT=str(port), PEGADM_WIDGET_ID=str(uuid.uuid4()),
               PEGADM_JWT_SECRET="a-test-secret-for-the-demo", PEGADM_SERVICE_URL=SERVICE)
    demo = Demo(env)
    try:
        assert demo.banner.wait(START_LIMIT), "no start-up message:\n" + demo.output()
        out = demo.output()
        assert demo.proc.poll() is None, "the demo stopped:\n" + out
        assert '"Control chat session initialization" turned on' in out, out
        assert "http://127.0.0.1:%d in Allowed domains" % port in out, out
        assert "Service URL in use: %s" % SERVICE in out, out

        status, page = get("http://127.0.0.1:%d/" % port)
        assert status == 401, (status, page)
        assert 'name="httpd_password"' in page, page
    finally:
        demo.stop()
    assert "demo: stopped" in demo.output(), demo.output()
