#!/usr/bin/env python3
"""The demo portal's customer database: log-in names mapped to the CRM's
customer IDs, as a portal keeps them. scripts/demo and the browser tests
create it the same way; httpd reads it through mod_dbd (SQLite)."""

import os
import sqlite3
import sys

# log-in name -> (Pega customer ID, display name)
CUSTOMERS = {
    "alice": ("CUST-100231", "Alice Adams"),
    "bob": ("CUST-100587", "Bob Brown"),
}


def create(path):
    """Writes a fresh database at `path`, readable by the httpd children."""
    if os.path.exists(path):
        os.unlink(path)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE portal_customers ("
                   " login TEXT PRIMARY KEY, customer_id TEXT NOT NULL, name TEXT NOT NULL)")
        db.executemany("INSERT INTO portal_customers VALUES (?, ?, ?)",
                       [(login, cid, name) for login, (cid, name) in CUSTOMERS.items()])
    db.close()
    os.chmod(path, 0o644)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: customers.py DATABASE-FILE")
    create(sys.argv[1])
