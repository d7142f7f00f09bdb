"""A portal behind Debian's mod_auth_mellon, against a real SAML identity
provider on loopback (lasso, tests/idp/saml_idp.py, run by
pegadm_harness.idp), in headless chromium: the customer signs in at the
identity provider, comes back through mod_auth_mellon (a signed assertion
over HTTP-POST) and opens the chat; Pega knows the customer by a SAML
attribute and has the attributes, typed, as private data.
"""

import os

import pytest
from selenium.webdriver.common.by import By

import pegadm_harness as harness
from pegadm_harness import idp
from pegadm_harness.plugin import require_module

MELLON_MODULE = os.path.join(harness.APACHE_MODULES, "mod_auth_mellon.so")
ENDPOINT = "/portal/mellon"

# What the identity provider's assertion (tests/idp/saml_idp.py) becomes in Pega.
PRIVATE_DATA = {
    "alice": {"customerId": "C-1001", "nameId": "6a1c0f7e-alice",
              "email": "alice@example.com", "name": "Alice Example",
              "accountNumber": 4711, "vip": True, "groups": "customers,gold"},
    "bob": {"customerId": "C-2002", "nameId": "9d2e4b1a-bob",
            "email": "bob@example.com", "name": "Bob Example",
            "accountNumber": 815, "vip": False, "groups": "customers"},
}

PORTAL_CONF = """\
LoadModule auth_mellon_module "{module}"
DirectoryIndex index.shtml

# The service provider, everywhere; who must log in is said below.
<Location "/">
    MellonSPPrivateKeyFile "{sp_key}"
    MellonSPCertFile "{sp_cert}"
    MellonSPMetadataFile "{sp_metadata}"
    MellonIdPMetadataFile "{idp_metadata}"
    MellonEndpointPath "{endpoint}"
    MellonUser uid
    MellonMergeEnvVars On ","
</Location>
# mod_auth_mellon marks its cookie test SameSite=None, which a browser
# takes only with Secure, over HTTPS; this portal is plain HTTP on loopback.
SetEnvIf Request_URI "^" MELLON_DISABLE_SAMESITE=1

{pegadm}
# The customer is the identity provider's customer number; the
# attributes are the private data, typed.
PegaDMCustomerID "%{{reqenv:MELLON_customerNumber}}"
PegaDMPrivateData customerId "%{{note:PEGADM_CUSTOMER_ID}}"
PegaDMPrivateData nameId "%{{reqenv:MELLON_NAME_ID}}"
PegaDMPrivateData email "%{{reqenv:MELLON_mail}}"
PegaDMPrivateData name "%{{reqenv:MELLON_displayName}}"
PegaDMPrivateData accountNumber "%{{reqenv:MELLON_accountNumber}}" number
PegaDMPrivateData vip "%{{reqenv:MELLON_vip}}" boolean
PegaDMPrivateData groups "%{{reqenv:MELLON_groups}}"

<Location "/portal">
    AuthType Mellon
    MellonEnable auth
    Require valid-user
    PegaDM On
    SetEnv PORTAL_LOGOUT "{endpoint}/logout?ReturnTo={logged_out}"
</Location>
# The logout link, mod_auth_mellon's logout endpoint, drops the chat session.
<Location "{endpoint}/logout">
    PegaDMForget On
</Location>
<Location "/pegadm/session">
    SetHandler pegadm-session
    AuthType Mellon
    MellonEnable info
    Require valid-user
</Location>
"""


@pytest.fixture(scope="module")
def saml_idp(workdir):
    """The identity provider, for the portals of this module, all on one port."""
    yield from idp.provide(idp.SamlIdp, workdir, ENDPOINT)


@pytest.fixture
def saml_portal(workdir, plain_dm, saml_idp):
    """A portal behind mod_auth_mellon and the identity provider, started."""
    require_module()
    assert os.path.exists(MELLON_MODULE), "libapache2-mod-auth-mellon is not installed"
    portal = idp.Portal(workdir, port=saml_idp.portal_port)
    provider = saml_idp
    portal.conf_body = PORTAL_CONF.format(
        module=MELLON_MODULE, sp_key=provider.sp_key, sp_cert=provider.sp_cert,
        sp_metadata=provider.sp_metadata, idp_metadata=provider.idp_metadata,
        endpoint=ENDPOINT, pegadm=idp.pegadm_lines(plain_dm),
        logged_out=portal.base + "/logged-out.html")
    yield from idp.serve(portal, provider)


def test_attributes_reach_pega_as_private_data(chromium, saml_portal, plain_dm):
    idp.check_the_login_reaches_pega(chromium, saml_portal, plain_dm, PRIVATE_DATA)


def test_the_documented_configuration_passes_apachectl(config_test, workdir, saml_idp):
    conf = idp.documented_conf("### SAML (mod_auth_mellon)")
    secret = harness.write_file(os.path.join(workdir, "documented-saml-secret"),
                                harness.WIDGET_SECRET, 0o600)
    conf = conf.replace("/etc/apache2/pegadm-jwt-secret", secret)
    # the files mellon_create_metadata and the identity provider made
    made = "/etc/apache2/mellon/https_portal.example.com_portal_mellon_metadata"
    for documented, real in ((made + ".key", saml_idp.sp_key),
                             (made + ".cert", saml_idp.sp_cert),
                             (made + ".xml", saml_idp.sp_metadata),
                             ("/etc/apache2/mellon/idp-metadata.xml", saml_idp.idp_metadata)):
        assert documented in conf, documented
        conf = conf.replace(documented, real)
    result = config_test('LoadModule auth_mellon_module "%s"\n%s' % (MELLON_MODULE, conf))
    assert result.returncode == 0, result.output


# ---- logout through mod_auth_mellon's logout endpoint (PegaDMForget) ----

def log_out(chromium, portal):
    """The portal's plain logout link: mod_auth_mellon's logout endpoint, a
    LogoutRequest to the identity provider, its LogoutResponse, back at the
    portal's logged-out page."""
    chromium.element("logout").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    assert chromium.driver.current_url == portal.base + "/logged-out.html"
    assert chromium.fetch("/pegadm/session")["status"] == 401


def test_logout_drops_the_chat_session(chromium, saml_portal, plain_dm):
    idp.check_logout_drops_the_chat_session(chromium, saml_portal, plain_dm, log_out, PRIVATE_DATA)


def test_the_next_user_at_the_browser_gets_nothing_of_the_first(
        chromium, saml_portal, plain_dm):
    idp.check_the_next_user_gets_nothing_of_the_first(chromium, saml_portal, plain_dm, log_out,
                                                      PRIVATE_DATA)


def test_a_logout_begun_at_the_identity_provider_drops_the_chat_session(
        chromium, saml_portal, plain_dm):
    """The customer logs out at the identity provider (of another
    application, say): it sends the browser to mod_auth_mellon's logout
    endpoint with a LogoutRequest, and the chat session goes too."""
    idp.sign_in(chromium, saml_portal, saml_portal.provider, "alice")
    first = chromium.open_chat()["session"]
    chromium.get(saml_portal.provider.url + "/logout")
    chromium.wait(lambda d: d.find_elements(By.ID, "signed-out"),
                  "the identity provider's signed-out page")
    chromium.get(saml_portal.base + "/logged-out.html")
    assert chromium.fetch("/pegadm/session")["status"] == 401

    idp.sign_in(chromium, saml_portal, saml_portal.provider, "alice")
    again = chromium.text("eager-session")
    assert again and again != first, "the session outlived the logout"
    idp.assert_pega_has(plain_dm, again, PRIVATE_DATA["alice"])
