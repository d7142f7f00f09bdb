"""Where things are and the values every test shares: the module under
test, Debian's httpd, the DM emulator, the test widgets and the timeouts.

PEGADM_TEST_MODULE, PEGADM_TEST_APACHE and PEGADM_TEST_APACHE_MODULES
override the module, the httpd binary and httpd's module directory.
"""

import os


HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
MODULE_PATH = os.environ.get(
    "PEGADM_TEST_MODULE", os.path.join(REPO_ROOT, "build", "mod_pegadm.so"))
EMULATOR_DIR = os.path.join(REPO_ROOT, "tools", "dm-emulator")
EMULATOR_SCRIPT = os.path.join(EMULATOR_DIR, "pega_dm_emulator.py")

APACHE_BIN = os.environ.get("PEGADM_TEST_APACHE", "/usr/sbin/apache2")
APACHE_MODULES = os.environ.get("PEGADM_TEST_APACHE_MODULES", "/usr/lib/apache2/modules")

WIDGET_ID = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"
WIDGET_SECRET = "Qx7rT2vLm9Kp4Wz8Ns3Hd6Fj1Bc5Vy0Ga2Ue7Io9"
OTHER_WIDGET_ID = "7d1e4f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
OTHER_WIDGET_SECRET = "a-different-secret-for-the-second-widget"
PASSWORD = "correct horse battery staple"

SESSION_PATH = "/pegadm/session"
BOOTSTRAP_PATH = "/pegadm/bootstrap.js"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 20.0
