"""The memcheck run reuses the integration tests' harness and fixtures
(workdir, ca, emulator, dm); they are loaded from tests/integration under a
name of their own, as both directories have a conftest.py."""

import importlib.util
import os
import sys

INTEGRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration")
sys.path.insert(0, INTEGRATION)

_spec = importlib.util.spec_from_file_location(
    "pegadm_integration_fixtures", os.path.join(INTEGRATION, "conftest.py"))
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

workdir = _fixtures.workdir
ca = _fixtures.ca
emulator = _fixtures.emulator
dm = _fixtures.dm
closed_port = _fixtures.closed_port
