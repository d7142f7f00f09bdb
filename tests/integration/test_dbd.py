"""PegaDMCustomerIDQuery: the customer ID looked up through mod_dbd, in
SQLite and in a real PostgreSQL server that the test initialises and
starts on 127.0.0.1 itself (and fails, not skips, if it cannot)."""

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess

import pytest

import pegadm_harness as harness
from pegadm_harness.caches import all_stopped
from pegadm_harness import (APACHE_MODULES, assert_json_error, assert_retry_after, assert_session,
                             location, parse_vars, pegadm_conf, session_get)

QUERY = "SELECT customer_id FROM portal_customers WHERE login = %s"
ROWS = [
    ("alice", "C-1001"),
    ("o'brien", "C-1002"),  # a quote in the parameter
    ("bob", None),          # NULL
    ("carol", "C-1003"),    # carol twice: refused
    ("carol", "C-1004"),
    ("erin", "C-1005"),
]
USERS = ["alice", "o'brien", "bob", "carol", "dave", "erin", "x' OR '1'='1"]
PG_START_TIMEOUT = 60
PG_COMMAND_TIMEOUT = 60


def page_sid(server, user):
    resp = server.request("GET", "/eager/session.shtml", user=user)
    assert resp.status == 200, resp
    return parse_vars(resp.body)["SID"].decode()


def dbd_site(dm, driver, params, extra=()):
    return ("LoadModule dbd_module %s/mod_dbd.so\n" % APACHE_MODULES
            + "DBDriver %s\nDBDParams \"%s\"\n" % (driver, params)
            + pegadm_conf(dm, extra=['PegaDMCustomerIDQuery "%s"' % QUERY, *extra])
            + harness.session_location() + location("/eager/", "PegaDM On"))


def assert_mapping(server, dm):
    """found, parameter with a quote, NULL, no row, duplicates, injection."""
    sid = assert_session(session_get(server, "alice"))
    assert [c["sessionId"] for c in dm.creates_for("C-1001")] == [sid]
    assert dm.state()["sessions"][sid]["privateData"] == {"customerId": "C-1001"}
    assert page_sid(server, "alice") == sid
    assert assert_session(session_get(server, "o'brien")) != sid
    assert len(dm.creates_for("C-1002")) == 1
    for user in ("bob", "carol", "dave", "x' OR '1'='1"):
        assert_json_error(session_get(server, user), 401, "unauthenticated")
        assert page_sid(server, user) == "(none)"
    assert len(dm.state()["creates"]) == 2
    log = server.error_log()
    assert re.search(r"PEGADM204: .* NULL or empty customer ID for log-in 'bob'", log), log
    assert re.search(r"PEGADM204: .* no row for log-in 'dave'", log), log
    assert re.search(r"PEGADM203: .* 2 rows for log-in 'carol'", log), log


def assert_database_unavailable(server, user):
    resp = session_get(server, user)
    assert_json_error(resp, 503, "upstream_unavailable")
    assert_retry_after(resp)
    assert page_sid(server, user) == "(none)"


# --------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------

@pytest.fixture
def sqlite_db(workdir):
    directory = harness.make_public_dir(workdir, "sqlite-")
    path = os.path.join(directory, "portal.sqlite")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE portal_customers (login TEXT NOT NULL, customer_id TEXT)")
        db.executemany("INSERT INTO portal_customers VALUES (?, ?)", ROWS)
    db.close()
    os.chmod(path, 0o644)
    return path


def sqlite_run(path, statement, *args):
    db = sqlite3.connect(path)
    with db:
        db.execute(statement, args)
    db.close()


@pytest.fixture
def sqlite_site(module_httpd, dm, sqlite_db):
    def start(extra=()):
        return module_httpd(dbd_site(dm, "sqlite3", sqlite_db, extra), users=USERS)
    return start


def test_sqlite_maps_log_in_names_to_customers(sqlite_site, dm):
    assert_mapping(sqlite_site(), dm)


def test_sqlite_query_error_answers_503_and_pages_still_work(sqlite_site, sqlite_db, dm):
    server = sqlite_site()
    assert_session(session_get(server, "alice"))
    sqlite_run(sqlite_db, "DROP TABLE portal_customers")
    assert_database_unavailable(server, "alice")
    assert_database_unavailable(server, "erin")
    assert "PEGADM20" in server.error_log()
    assert len(dm.state()["creates"]) == 1


def test_without_ttl_every_request_asks_the_database(sqlite_site, sqlite_db, dm):
    server = sqlite_site()
    assert_session(session_get(server, "alice"))
    sqlite_run(sqlite_db, "UPDATE portal_customers SET customer_id = 'C-2001' "
                          "WHERE login = 'alice'")
    assert_session(session_get(server, "alice"))
    assert [c["customerId"] for c in dm.state()["creates"]] == ["C-1001", "C-2001"]


def test_ttl_caches_answers_found_or_not(sqlite_site, sqlite_db, dm):
    server = sqlite_site(["PegaDMCustomerIDQueryTTL 300"])
    sid = assert_session(session_get(server, "alice"))
    assert_json_error(session_get(server, "dave"), 401, "unauthenticated")
    sqlite_run(sqlite_db, "UPDATE portal_customers SET customer_id = 'C-2001' "
                          "WHERE login = 'alice'")
    sqlite_run(sqlite_db, "INSERT INTO portal_customers VALUES ('dave', 'C-2002')")
    assert assert_session(session_get(server, "alice")) == sid
    assert_json_error(session_get(server, "dave"), 401, "unauthenticated")
    # With the database gone, cached answers still hold; others are unknown.
    sqlite_run(sqlite_db, "DROP TABLE portal_customers")
    assert assert_session(session_get(server, "alice")) == sid
    assert page_sid(server, "alice") == sid
    assert_json_error(session_get(server, "dave"), 401, "unauthenticated")
    assert_database_unavailable(server, "erin")
    assert [c["customerId"] for c in dm.state()["creates"]] == ["C-1001"]


def test_cached_answers_are_per_widget(module_httpd, dm, sqlite_db):
    """Two widgets with the same query and log-in name: the cache of one is
    not the cache of the other (the keys differ by widget and secret)."""
    conf = ("LoadModule dbd_module %s/mod_dbd.so\n" % APACHE_MODULES
            + 'DBDriver sqlite3\nDBDParams "%s"\n' % sqlite_db
            + pegadm_conf(dm, extra=['PegaDMCustomerIDQuery "%s"' % QUERY,
                                     "PegaDMCustomerIDQueryTTL 300"])
            + harness.session_location()
            + location("/other/session", "SetHandler pegadm-session",
                       "PegaDMWidgetID %s" % harness.OTHER_WIDGET_ID,
                       'PegaDMJWTSecret "%s"' % harness.OTHER_WIDGET_SECRET))
    server = module_httpd(conf, users=USERS)
    assert_session(session_get(server, "alice"))
    sqlite_run(sqlite_db, "UPDATE portal_customers SET customer_id = 'C-2001' "
                          "WHERE login = 'alice'")
    assert_session(session_get(server, "alice", path="/other/session"),
                   widget=harness.OTHER_WIDGET_ID)
    assert [(c["widget"], c["customerId"]) for c in dm.state()["creates"]] == [
        (harness.WIDGET_ID, "C-1001"), (harness.OTHER_WIDGET_ID, "C-2001")]


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("PostgreSQL is missing: install Debian's postgresql package")
    return os.path.dirname(found[-1])


class Postgres:
    """A throwaway cluster in its own directory, on 127.0.0.1 only (no
    Unix socket), run by the postgres user when the tests run as root."""

    DB, USER, PASSWORD = "portal", "pegadm", "pg-password-of-the-test"

    def __init__(self, workdir):
        self.bindir = pg_bindir()
        self.dir = harness.make_public_dir(workdir, "postgres-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = harness.free_port()
        self.owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.admin_password = "pg-admin-password-of-the-test"

    def run(self, tool, *args, env=None):
        command = [os.path.join(self.bindir, tool), *args]
        if self.owner:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=self.dir,
                              timeout=PG_COMMAND_TIMEOUT, env=env)
        if proc.returncode != 0:
            pytest.fail("%s failed (%d): %s%s\n%s" % (tool, proc.returncode, proc.stdout,
                                                       proc.stderr, self.log_tail()))
        return proc.stdout

    def log_tail(self):
        try:
            with open(self.log) as fh:
                return fh.read()[-3000:]
        except OSError:
            return ""

    def init(self):
        pwfile = harness.write_file(os.path.join(self.dir, "pwfile"), self.admin_password,
                                    0o600)
        for path in (self.dir, pwfile):
            if self.owner:
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        self.run("initdb", "-D", self.data, "-U", "postgres", "-A", "scram-sha-256",
                 "--pwfile", pwfile, "-E", "UTF8", "--no-locale", "--no-sync")
        return self

    def start(self):
        options = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories="
                   " -c fsync=off" % self.port)
        self.run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w",
                 "-t", str(PG_START_TIMEOUT), "start")
        return self

    def stop(self):
        self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", str(PG_START_TIMEOUT),
                 "stop")

    def sql(self, statement, user="postgres", password=None, db="postgres"):
        env = {"PGPASSWORD": password or self.admin_password, "PATH": os.environ["PATH"]}
        return self.run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                        "-p", str(self.port), "-U", user, "-d", db, "-c", statement, env=env)

    @property
    def params(self):
        return "host=127.0.0.1 port=%d dbname=%s user=%s password=%s" % (
            self.port, self.DB, self.USER, self.PASSWORD)


def pg_literal(value):
    return "NULL" if value is None else "'%s'" % value.replace("'", "''")


@pytest.fixture(scope="module")
def postgres(workdir):
    if not shutil.which("runuser") and os.geteuid() == 0:
        pytest.fail("runuser is missing (util-linux)")
    pg = Postgres(workdir).init().start()
    try:
        pg.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (pg.USER, pg.PASSWORD))
        pg.sql("CREATE DATABASE %s OWNER %s" % (pg.DB, pg.USER))
        pg.sql("CREATE TABLE portal_customers (login text NOT NULL, customer_id text);"
               "INSERT INTO portal_customers VALUES %s;" % ", ".join(
                   "(%s, %s)" % (pg_literal(l), pg_literal(c)) for l, c in ROWS),
               user=pg.USER, password=pg.PASSWORD, db=pg.DB)
        yield pg
    finally:
        pg.stop()


def test_postgres_maps_log_in_names_to_customers(module_httpd, dm, postgres):
    assert_mapping(module_httpd(dbd_site(dm, "pgsql", postgres.params), users=USERS), dm)


def answers_again(server, timeout, what):
    """alice's and erin's session answers once both are 200 again."""
    def recovered():
        answers = [session_get(server, user) for user in ("alice", "erin")]
        return all(a.status == 200 for a in answers) and answers

    return harness.wait_for(recovered, timeout, 0.1, what)


def test_postgres_down_answers_503_and_pages_still_work(module_httpd, dm, postgres):
    server = module_httpd(dbd_site(dm, "pgsql", postgres.params), users=USERS)
    sid = assert_session(session_get(server, "alice"))
    postgres.stop()
    try:
        assert_database_unavailable(server, "alice")
        assert_database_unavailable(server, "erin")
        failures = re.findall(r"PEGADM20[12]: .*", server.error_log())
        assert failures
        # the cause logged is the query's, not that of preparing it again
        assert not [line for line in failures if "already exists" in line], failures
    finally:
        postgres.start()
    # mod_dbd notices a broken pooled connection once a query on it has
    # failed, and reconnects when a later request draws it: each stale
    # connection costs one more 503.
    alice, erin = answers_again(server, 20, "mod_dbd to reconnect")
    assert assert_session(alice) == sid
    assert_session(erin)
    assert [c["customerId"] for c in dm.state()["creates"]] == ["C-1001", "C-1005"]


# One child, one thread: one pooled connection, drawn by every request.
ONE_CONNECTION = ("ServerLimit 1", "StartServers 1", "ThreadsPerChild 1",
                  "MinSpareThreads 1", "MaxSpareThreads 1", "MaxRequestWorkers 1")


def test_postgres_restarted_unnoticed_recovers(module_httpd, dm, postgres):
    """A restart that no request saw: the pooled connection is broken, and
    once mod_dbd has reconnected it (libpq's reset) the statement prepared
    on the old session is gone. The lookup must not fail for ever on it."""
    server = module_httpd(dbd_site(dm, "pgsql", postgres.params, extra=ONE_CONNECTION),
                          users=USERS)
    sid = assert_session(session_get(server, "alice"))
    postgres.stop()
    postgres.start()

    alice, erin = answers_again(server, 10, "the lookup to work again")
    assert assert_session(alice) == sid
    assert_session(erin)
    repaired = repairs(server)
    assert repaired and "does not exist" in repaired[0], repaired
    # the connection is mended, not worked around: later requests prepare nothing
    for _ in range(5):
        assert assert_session(session_get(server, "alice")) == sid
    assert repairs(server) == repaired


def test_postgres_query_error_is_logged_with_its_own_cause(module_httpd, dm, postgres):
    """A query that fails while its statement is still prepared: preparing it
    again fails too (the name exists), and the log must tell the query's
    cause, not that one."""
    server = module_httpd(dbd_site(dm, "pgsql", postgres.params), users=USERS)
    sid = assert_session(session_get(server, "alice"))
    as_owner = dict(user=postgres.USER, password=postgres.PASSWORD, db=postgres.DB)
    postgres.sql("REVOKE SELECT ON portal_customers FROM %s" % postgres.USER, **as_owner)
    try:
        assert_database_unavailable(server, "alice")
    finally:
        postgres.sql("GRANT SELECT ON portal_customers TO %s" % postgres.USER, **as_owner)
    failures = re.findall(r"PEGADM202: .*", server.error_log())
    assert failures and all("permission denied" in line for line in failures), failures
    assert repairs(server) == []
    assert assert_session(session_get(server, "alice")) == sid


def repairs(server):
    return [line for line in server.error_log().splitlines() if "PEGADM207: " in line]


# --------------------------------------------------------------------------
# a hung database: PegaDMCustomerIDQueryConcurrency
# --------------------------------------------------------------------------

# One child with a thread for every request the test sends at once, so that
# the bound of that child is the bound of the server.
ONE_WIDE_CHILD = ("ServerLimit 1", "StartServers 1", "ThreadsPerChild 80",
                  "MaxRequestWorkers 80", "MinSpareThreads 1", "MaxSpareThreads 80")
BOUND = 4
NEW_CUSTOMERS = ["new-%02d" % i for i in range(64)]
# A request that has no answer after this long waits on the database (it
# waits until SIGCONT); every other one must answer within it.
HUNG = 5


def postgres_pids(pg):
    """The postmaster (its PID file) and every process it started."""
    with open(os.path.join(pg.data, "postmaster.pid")) as fh:
        postmaster = int(fh.readline())
    return {postmaster} | harness.children_of(postmaster)


@contextlib.contextmanager
def frozen(pg):
    """Every process of the server stopped (SIGSTOP), as a hung database
    host looks to a client: connections are accepted, nothing answers."""
    pids = postgres_pids(pg)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            harness.wait_for(lambda: all_stopped(pid), 10, 0.005, "SIGSTOP to take hold")
        yield
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def request_or_none(server, path, user):
    """The answer, or None when there is none within HUNG seconds."""
    try:
        return server.request("GET", path, user=user, timeout=HUNG)
    except (socket.timeout, TimeoutError):
        return None


def test_a_hung_database_holds_no_more_threads_than_the_bound(module_httpd, dm, postgres):
    extra = ("PegaDMCustomerIDQueryTTL 300", "PegaDMCustomerIDQueryConcurrency %d" % BOUND,
             *ONE_WIDE_CHILD)
    server = module_httpd(dbd_site(dm, "pgsql", postgres.params, extra=extra),
                          users=USERS + NEW_CUSTOMERS)
    cached = {user: assert_session(session_get(server, user)) for user in ("alice", "erin")}

    with frozen(postgres):
        # half of them at the endpoint, half on an eager page
        paths = [harness.SESSION_PATH, "/eager/session.shtml"]
        answers = harness.run_together(
            [lambda i=i: request_or_none(server, paths[i % 2], user)
             for i, user in enumerate(NEW_CUSTOMERS)], timeout=4 * HUNG)
        waiting = [NEW_CUSTOMERS[i] for i, resp in enumerate(answers) if resp is None]
        assert len(waiting) == BOUND, waiting
        for i, resp in enumerate(answers):
            if resp is None:
                continue
            assert not isinstance(resp, Exception), resp
            if i % 2 == 0:
                assert_json_error(resp, 503, "upstream_unavailable")
                assert_retry_after(resp)
            else:
                assert resp.status == 200, resp
                assert parse_vars(resp.body)["SID"] == b"(none)"

        # while BOUND threads still wait: static files, cached customers'
        # pages and sessions, and the next new customer's 503, all at once
        assert request_or_none(server, "/index.html", None).status == 200
        for user, sid in cached.items():
            assert assert_session(request_or_none(server, harness.SESSION_PATH, user)) == sid
            page = request_or_none(server, "/eager/session.shtml", user)
            assert parse_vars(page.body)["SID"].decode() == sid
        assert_json_error(request_or_none(server, harness.SESSION_PATH, "dave"), 503,
                          "upstream_unavailable")
        assert re.search(r"PEGADM208: .*PegaDMCustomerIDQueryConcurrency %d" % BOUND,
                         server.error_log())

    # thawed: the waiting requests finish, and new customers are looked up
    # again (new-00 has no row: 401)
    harness.wait_for(lambda: session_get(server, "new-00").status == 401, 30, 0.2,
                     "the database to answer again")


# --------------------------------------------------------------------------
# start-up refusals
# --------------------------------------------------------------------------

DBD_LOAD = "LoadModule dbd_module %s/mod_dbd.so\n" % APACHE_MODULES


@pytest.mark.parametrize("case,conf,message", [
    ("no mod_dbd", 'PegaDMCustomerIDQuery "%s"\n' % QUERY, "needs mod_dbd"),
    ("no DBDriver", DBD_LOAD + 'PegaDMCustomerIDQuery "%s"\n' % QUERY, "has no database"),
    ("no DBDriver in the virtual host's server", DBD_LOAD
     + "<VirtualHost 127.0.0.1:8>\n  DBDriver sqlite3\n</VirtualHost>\n"
     + '<Location /x>\n  PegaDMCustomerIDQuery "%s"\n</Location>\n' % QUERY,
     "has no database"),
    ("no parameter", DBD_LOAD + 'DBDriver sqlite3\nPegaDMCustomerIDQuery '
     '"SELECT id FROM c WHERE login = \'x\'"\n', "exactly one parameter"),
    ("two parameters", DBD_LOAD + 'DBDriver sqlite3\nPegaDMCustomerIDQuery '
     '"SELECT id FROM c WHERE login = %s OR mail = %s"\n', "exactly one parameter"),
    ("not a string parameter", DBD_LOAD + 'DBDriver sqlite3\nPegaDMCustomerIDQuery '
     '"SELECT id FROM c WHERE n = %d"\n', "exactly one parameter"),
    ("TTL not a number", DBD_LOAD + "PegaDMCustomerIDQueryTTL soon\n", "0 to 86400"),
    ("TTL too large", DBD_LOAD + "PegaDMCustomerIDQueryTTL 86401\n", "0 to 86400"),
    ("concurrency too large", "PegaDMCustomerIDQueryConcurrency 10001\n", "0 to 10000"),
    ("concurrency in a virtual host", "<VirtualHost 127.0.0.1:8>\n"
     "  PegaDMCustomerIDQueryConcurrency 4\n</VirtualHost>\n", "cannot occur within"),
])
def test_misconfiguration_stops_the_start(config_test, case, conf, message):
    result = config_test(conf)
    returncode, output = result
    assert returncode != 0, output
    assert message in output, output
    directive = ("PegaDMCustomerIDQueryTTL" if "TTL" in case
                 else "PegaDMCustomerIDQueryConcurrency" if "concurrency" in case
                 else "PegaDMCustomerIDQuery")
    assert directive in output, output
    line = result.line_of(directive)
    assert str(line) in output, output


def test_a_complete_configuration_passes(config_test, workdir):
    returncode, output = config_test(
        DBD_LOAD + 'DBDriver sqlite3\nDBDParams "%s/none.sqlite"\n' % workdir
        + "<VirtualHost 127.0.0.1:8>\n"
        + '  PegaDMCustomerIDQuery "SELECT id FROM c WHERE login = %s AND pct LIKE \'5%%\'"\n'
        + "  PegaDMCustomerIDQueryTTL 0\n</VirtualHost>\n")
    assert returncode == 0, output
