"""A real browser for the integration tests: Debian's chromium, headless,
driven through chromedriver by Debian's python3-selenium; and the demo portal
exactly as scripts/demo runs it (demo/httpd.conf, demo/htdocs).

Every browser starts with a fresh profile and never talks to anything but
loopback (no component updates, no sync, no background networking). Every
wait is bounded.
"""

import grp
import os
import pwd
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .httpd import Httpd, htpasswd_line
from .settings import (APACHE_MODULES, MODULE_PATH, REPO_ROOT, WIDGET_ID,
                       WIDGET_SECRET)
from .util import free_port, load_source, write_file

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15.0
WINDOW = (1280, 860)

DEMO_DIR = os.path.join(REPO_ROOT, "demo")
DEMO_USERS = {"alice": "alice", "bob": "bob"}


def demo_customers():
    """demo/customers.py: the demo's customer database."""
    return load_source("demo_customers", os.path.join(DEMO_DIR, "customers.py"))


def demo_private_data(user):
    """What the demo sends Pega for `user` (demo/httpd.conf)."""
    return {"customerId": demo_customers().CUSTOMERS[user][0], "userName": user,
            "authenticated": True}


class Chromium:
    """One headless chromium with its own throwaway profile."""

    def __init__(self, workdir):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--user-data-dir=" + self.profile,
                     "--window-size=%d,%d" % WINDOW):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.log_path = os.path.join(workdir, "chromedriver-%d.log" % id(self))
        self.driver = webdriver.Chrome(
            service=Service(CHROMEDRIVER, log_path=self.log_path), options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.console = []

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # ---- pages ----

    def get(self, url):
        self.driver.get(url)

    def wait(self, condition, what, timeout=WAIT):
        """Wait until condition(driver) is truthy; fail with `what` and the
        browser's console otherwise."""
        try:
            return WebDriverWait(self.driver, timeout).until(condition)
        except TimeoutException:
            raise AssertionError("browser: timed out waiting for %s\nURL %s\nconsole:\n%s" % (
                what, self.driver.current_url, "\n".join(self.console_messages())))

    def element(self, element_id):
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id):
        return self.element(element_id).text

    def has(self, element_id):
        return bool(self.driver.find_elements(By.ID, element_id))

    def run(self, script, *args):
        return self.driver.execute_script(script, *args)

    def run_async(self, script, *args):
        """Run `script` with a callback `done` as its last argument."""
        return self.driver.execute_async_script(script, *args)

    def console_messages(self):
        """Everything the page logged so far (kept across calls)."""
        try:
            self.console += [entry["message"] for entry in self.driver.get_log("browser")]
        except WebDriverException:
            pass
        return self.console

    def fetch(self, path, method="GET"):
        """fetch() from the current page (its origin, its cookies):
        {"status", "body"}."""
        return self.run_async(
            "var done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {method: arguments[1], credentials: 'include',"
            "                     cache: 'no-store'})"
            "  .then(function (r) { return r.text().then(function (t) {"
            "    done({status: r.status, body: t}); }); })"
            "  .catch(function (e) { done({status: 0, body: String(e)}); });",
            path, method)

    def screenshot(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        assert self.driver.save_screenshot(path), "screenshot failed"

    # ---- the demo portal and the emulated widget ----

    def log_in(self, base, user, password=None):
        self.get(base + "/")
        self.wait(lambda d: d.find_elements(By.ID, "username"), "the login form")
        self.element("username").send_keys(user)
        self.element("password").send_keys(password or DEMO_USERS[user])
        self.element("sign-in").click()
        self.wait(lambda d: d.find_elements(By.ID, "user") or d.find_elements(
            By.ID, "login-failed"), "the portal page after logging in")
        assert self.has("user"), "login as %s failed" % user
        assert self.text("user") == user

    def wait_for_widget(self):
        """Until the widget script (loaded by the bootstrap) has rendered."""
        self.wait(lambda d: d.find_elements(By.ID, "pega-emu-launcher"), "the chat widget")

    def wait_for_chat(self):
        """Until the opened chat is connected (or failed); returns its facts."""
        self.wait(lambda d: d.find_element(By.ID, "pega-emu-session").text or
                  d.find_element(By.ID, "pega-emu-widget").get_attribute("class").endswith(
                      "error"), "the chat to connect")
        facts = {name: self.text("pega-emu-" + name)
                 for name in ("status", "session", "customer", "private-data", "trigger")}
        assert facts["session"], "the chat did not connect: %s\nconsole:\n%s" % (
            facts["status"], "\n".join(self.console_messages()))
        return facts

    def open_chat(self):
        """Click the widget's launcher (a chat without a proactive trigger)."""
        self.wait_for_widget()
        self.element("pega-emu-launcher").click()
        return self.wait_for_chat()


class _ForeignHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.seen.append(("GET", self.path))
        body = self.server.page if self.path == "/" else b"not here\n"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.server.seen.append(("POST", self.path))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class ForeignSite:
    """A page of another site, served on 127.0.0.1 and opened as
    http://localhost:<port>/ (localhost is not the same site as 127.0.0.1):
    `page` at /, 404 elsewhere; `seen` lists the (method, path) asked for.
    A context manager: it stops on leaving."""

    def __init__(self, page):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ForeignHandler)
        self.server.page = page.encode() if isinstance(page, str) else page
        self.server.seen = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://localhost:%d/" % self.server.server_address[1]

    @property
    def seen(self):
        return self.server.seen

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class DemoPortal(Httpd):
    """The demo portal as scripts/demo runs it (demo/httpd.conf, a copy of
    demo/htdocs, alice/alice and bob/bob, a fresh cookie key), against
    `emulator`, on a free port."""

    def __init__(self, workdir, emulator):
        super().__init__(workdir)
        self.emulator = emulator
        self.conf_path = os.path.join(DEMO_DIR, "httpd.conf")

    def write_config(self):
        web = os.path.join(self.root, "web")
        for sub in ("run", "logs", "web"):
            os.makedirs(os.path.join(self.root, sub), mode=0o755, exist_ok=True)
        shutil.copytree(os.path.join(DEMO_DIR, "htdocs"), os.path.join(web, "htdocs"))
        for top, dirs, files in os.walk(web):
            for name in dirs:
                os.chmod(os.path.join(top, name), 0o755)
            for name in files:
                os.chmod(os.path.join(top, name), 0o644)
        write_file(os.path.join(web, "htpasswd"),
                   b"".join(htpasswd_line(u, p) for u, p in DEMO_USERS.items()))
        demo_customers().create(os.path.join(web, "customers.sqlite"))
        secret = write_file(os.path.join(self.root, "jwt-secret"), WIDGET_SECRET, 0o600)
        key = write_file(os.path.join(self.root, "session-key"), os.urandom(32).hex(), 0o600)
        self.port = free_port()
        root = os.geteuid() == 0
        self.env = {
            "PEGADM_DEMO_STATE": self.root,
            "PEGADM_DEMO_WEB": web,
            "PEGADM_DEMO_PORT": str(self.port),
            "PEGADM_DEMO_USER": "www-data" if root else pwd.getpwuid(os.getuid()).pw_name,
            "PEGADM_DEMO_GROUP": "www-data" if root else grp.getgrgid(os.getgid()).gr_name,
            "PEGADM_DEMO_MODULES": APACHE_MODULES,
            "PEGADM_DEMO_MODULE": MODULE_PATH,
            "PEGADM_DEMO_WIDGET_ID": WIDGET_ID,
            "PEGADM_DEMO_SECRET_FILE": secret,
            "PEGADM_DEMO_SERVICE_URL": self.emulator.url,
            "PEGADM_DEMO_SESSION_KEY_FILE": key,
        }

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port
