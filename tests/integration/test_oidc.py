"""A portal behind Debian's mod_auth_openidc, against a real OpenID provider
on loopback (oidc-provider, tests/idp/oidc-provider.js, run by
pegadm_harness.idp), in headless chromium: the customer signs in at the
provider, comes back through mod_auth_openidc and opens the chat; Pega
knows the customer by a claim and has the claims, typed, as private data.
"""

import os

import pytest
from selenium.webdriver.common.by import By

import pegadm_harness as harness
from pegadm_harness import idp
from pegadm_harness.plugin import require_module

OIDC_MODULE = os.path.join(harness.APACHE_MODULES, "mod_auth_openidc.so")
CLIENT_SECRET = "portal-client-secret-for-the-tests"

# What the provider's claims (tests/idp/oidc-provider.js) become in Pega.
PRIVATE_DATA = {
    "alice": {"customerId": "C-1001", "email": "alice@example.com", "name": "Alice Example",
              "emailVerified": True, "accountNumber": 4711, "vip": True,
              "address": {"locality": "Springfield", "country": "US"}},
    "bob": {"customerId": "C-2002", "email": "bob@example.com", "name": "Bob Example",
            "emailVerified": False, "accountNumber": 815, "vip": False,
            "address": {"locality": "Shelbyville", "country": "US"}},
}

PORTAL_CONF = """\
LoadModule auth_openidc_module "{module}"
DirectoryIndex index.shtml

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret "{client_secret}"
OIDCRedirectURI {base}/portal/redirect_uri
OIDCCryptoPassphrase "{passphrase}"
OIDCScope "openid email profile address customer"
OIDCRemoteUserClaim sub

{pegadm}
# The customer is the provider's customer number; the claims are the
# private data, typed.
PegaDMCustomerID "%{{reqenv:OIDC_CLAIM_customer_number}}"
PegaDMPrivateData customerId "%{{note:PEGADM_CUSTOMER_ID}}"
PegaDMPrivateData email "%{{reqenv:OIDC_CLAIM_email}}"
PegaDMPrivateData name "%{{reqenv:OIDC_CLAIM_name}}"
PegaDMPrivateData emailVerified "%{{reqenv:OIDC_CLAIM_email_verified}}" boolean
PegaDMPrivateData accountNumber "%{{reqenv:OIDC_CLAIM_account_number}}" number
PegaDMPrivateData vip "%{{reqenv:OIDC_CLAIM_vip}}" boolean
PegaDMPrivateData address "%{{reqenv:OIDC_CLAIM_address}}" json

<Location "/portal">
    AuthType openid-connect
    Require valid-user
    PegaDM On
    SetEnv PORTAL_LOGOUT "/portal/redirect_uri?logout={logged_out}"
</Location>
# The logout link, mod_auth_openidc's ?logout=, drops the chat session.
<Location "/portal/redirect_uri">
    <If "%{{QUERY_STRING}} =~ /(^|&)logout=/">
        PegaDMForget On
    </If>
</Location>
<Location "/pegadm/session">
    SetHandler pegadm-session
    AuthType openid-connect
    OIDCUnAuthAction 401
    Require valid-user
</Location>
"""


@pytest.fixture(scope="module")
def oidc_provider(workdir):
    """The OpenID provider, for the portals of this module, all on one port."""
    yield from idp.provide(idp.OidcProvider, workdir, CLIENT_SECRET)


@pytest.fixture
def oidc_portal(workdir, plain_dm, oidc_provider):
    """A portal behind mod_auth_openidc and the OpenID provider, started."""
    require_module()
    assert os.path.exists(OIDC_MODULE), "libapache2-mod-auth-openidc is not installed"
    portal = idp.Portal(workdir, port=oidc_provider.portal_port)
    provider = oidc_provider
    portal.conf_body = PORTAL_CONF.format(
        module=OIDC_MODULE, issuer=provider.issuer, client_id=provider.CLIENT_ID,
        client_secret=CLIENT_SECRET, base=portal.base, passphrase=os.urandom(16).hex(),
        pegadm=idp.pegadm_lines(plain_dm),
        logged_out=portal.base + "/logged-out.html")
    yield from idp.serve(portal, provider)


def test_claims_reach_pega_as_private_data(chromium, oidc_portal, plain_dm):
    idp.check_the_login_reaches_pega(chromium, oidc_portal, plain_dm, PRIVATE_DATA)


def test_the_documented_configuration_passes_apachectl(config_test, workdir):
    conf = idp.documented_conf("### OpenID Connect (mod_auth_openidc)")
    secret = harness.write_file(os.path.join(workdir, "documented-oidc-secret"),
                                harness.WIDGET_SECRET, 0o600)
    conf = conf.replace("/etc/apache2/pegadm-jwt-secret", secret)
    result = config_test('LoadModule auth_openidc_module "%s"\n%s' % (OIDC_MODULE, conf),
                         env={"PORTAL_OIDC_CLIENT_SECRET": CLIENT_SECRET,
                              "PORTAL_OIDC_PASSPHRASE": "a passphrase"})
    assert result.returncode == 0, result.output


# ---- logout through mod_auth_openidc's ?logout= (PegaDMForget) ----

def log_out(chromium, portal):
    """The portal's plain logout link: mod_auth_openidc's ?logout=, the
    provider's sign-out page, back at the portal's logged-out page."""
    chromium.element("logout").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "sign-out"),
                  "the provider's sign-out page")
    chromium.element("sign-out").click()
    chromium.wait(lambda d: d.find_elements(By.ID, "logged-out"), "the logged-out page")
    assert chromium.driver.current_url == portal.base + "/logged-out.html"
    assert chromium.fetch("/pegadm/session")["status"] == 401


def test_logout_drops_the_chat_session(chromium, oidc_portal, plain_dm):
    idp.check_logout_drops_the_chat_session(chromium, oidc_portal, plain_dm, log_out, PRIVATE_DATA)


def test_the_next_user_at_the_browser_gets_nothing_of_the_first(
        chromium, oidc_portal, plain_dm):
    idp.check_the_next_user_gets_nothing_of_the_first(chromium, oidc_portal, plain_dm, log_out,
                                                      PRIVATE_DATA)
