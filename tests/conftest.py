"""Loads the test harness (tests/pegadm_harness) as a pytest plugin for every
test directory below: tests/integration and tests/valgrind alike. Being the
conftest.py of their parent, it is read before any test is collected, from
whatever directory pytest runs in."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest_plugins = ["pegadm_harness.plugin"]
