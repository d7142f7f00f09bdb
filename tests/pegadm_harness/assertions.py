"""What the tests check in the module's answers and logs: the session
endpoint's success and error shapes, the variables the SSI page and CGI
script print, the module's log lines (and its warnings, by the levels of
docs/messages.md), and which child served what."""

import os
import re
import threading

from .client import session_get
from .settings import REPO_ROOT, SESSION_PATH, WIDGET_ID
from .util import wait_for


def parse_vars(body):
    """SID/WID/USER values from the SSI page or CGI script, as bytes."""
    return {m.group(1).decode(): m.group(2)
            for m in re.finditer(rb"^(SID|WID|USER)=\[(.*)\]$", body, re.M)}


SESSION_ID_RE = re.compile(r"^[A-Za-z0-9._~:-]{1,128}$")


def assert_protective_headers(resp):
    """Every answer of the JSON endpoint, errors included, must carry these."""
    assert "no-store" in (resp.header("Cache-Control") or ""), resp
    assert (resp.header("X-Content-Type-Options") or "").lower() == "nosniff", resp


def assert_json_error(resp, status, code=None):
    """A contract error: the status, JSON {"error", "message"}, protective headers."""
    assert resp.status == status, resp
    assert_protective_headers(resp)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    doc = resp.json()
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    if code is not None:
        assert doc["error"] == code, doc
    return doc


def assert_retry_after(resp, most=None):
    value = resp.header("Retry-After")
    assert value is not None and value.isdigit() and int(value) > 0, resp
    if most is not None:
        assert int(value) <= most, resp
    return int(value)


def assert_session(resp, widget=WIDGET_ID):
    """A 200 from the JSON endpoint; returns the session ID."""
    assert resp.status == 200, resp
    assert_protective_headers(resp)
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    doc = resp.json()
    assert doc.get("widgetId") == widget, doc
    sid = doc.get("sessionId")
    assert isinstance(sid, str) and SESSION_ID_RE.match(sid), doc
    return sid


def sessions_at_once(server, users, threads_per_user=4, requests=5, timeout=60):
    """Each user asks for the session from several threads at once, a few
    times each; returns {user: [the session IDs answered]}, every answer
    checked by assert_session and every user's list complete."""
    answers = {user: [] for user in users}

    def client(user):
        answers[user].extend(assert_session(session_get(server, user)) for _ in range(requests))

    threads = [threading.Thread(target=client, args=(user,))
               for user in users for _ in range(threads_per_user)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    for user in users:
        assert len(answers[user]) == threads_per_user * requests, answers
    return answers


def pegadm_log_lines(text):
    """Error log lines the module wrote (httpd tags them [pegadm:level])."""
    return [line for line in text.splitlines() if "[pegadm:" in line]


MESSAGES_DOC = os.path.join(REPO_ROOT, "docs", "messages.md")
WARNING_LEVELS = ("warn", "error", "crit", "alert", "emerg")


def message_levels(path=MESSAGES_DOC):
    """{"PEGADMnnn": level} as the catalogue docs/messages.md lists them."""
    with open(path, encoding="utf-8") as fh:
        return dict(re.findall(r"^\| (PEGADM\d{3}) \| (\w+) \|", fh.read(), re.M))


def pegadm_warnings(text, allowed=()):
    """The lines of a log with a PEGADM message of level warn or worse, by
    the level docs/messages.md gives it (start-up lines carry no
    [pegadm:level] tag), but for the message numbers in `allowed`."""
    levels = message_levels()
    found = []
    for line in text.splitlines():
        numbers = set(re.findall(r"\bPEGADM\d{3}\b", line)) - set(allowed)
        if any(levels.get(n) in WARNING_LEVELS for n in numbers):
            found.append(line)
    return found


def children_serving(server, conns, requests, path=SESSION_PATH):
    """{tag: set of PIDs} for the kept connections' requests for `path`, from
    pids.log (see PIDS_LOG), once all `requests` of them are logged (a line
    is written after its answer, so the log may lag behind the client)."""
    log = os.path.join(server.root, "logs", "pids.log")
    tags = {conn.tag for conn in conns}

    def lines():
        found = [line.split() for line in server.read(log).splitlines()]
        found = [f for f in found if len(f) == 5 and f[3] == path and f[4] in tags]
        return found if len(found) >= requests else None

    pids = {tag: set() for tag in tags}
    for pid, _, _, _, tag in wait_for(lines, 5, what="%d lines in pids.log" % requests):
        pids[tag].add(pid)
    return pids


def assert_one_child_each(pids):
    """Each connection stayed with one child, and no two shared one."""
    assert all(len(p) == 1 for p in pids.values()), pids
    assert len(set.union(*pids.values())) == len(pids), pids
