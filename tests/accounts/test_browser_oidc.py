"""Company sign-in in a real Chromium, through a real OpenID Connect provider."""

import pytest

from tests.accounts.conftest import sign_in_with_provider, start_oidc_server
from tests.oidc.provider import entra_claims

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def oidc_server(tmp_path_factory, oidc_provider):
    server = start_oidc_server(tmp_path_factory.mktemp("oidc-live"), oidc_provider,
                               extra_env={"OIDC_ALLOWED_EMAIL_DOMAINS": "contoso.com"})
    yield server
    print(server.log()[-6000:])
    server.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def test_sign_in_creates_the_user_with_name_email_and_groups(page, oidc_server, oidc_provider, screenshot):
    oidc_provider.set_user("carol", entra_claims("carol", groups=["g-research"], roles=["Chat.Premium"]))
    sign_in_with_provider(page, oidc_server, "carol")
    assert "carol@contoso.com" in page.inner_text("[data-testid=whoami]")
    screenshot(page, "oidc-signed-in")
    out = oidc_server.shell(
        "from django.contrib.auth import get_user_model;"
        "u=get_user_model().objects.get(username='carol@contoso.com');"
        "print(u.email, u.first_name, sorted(u.groups.values_list('name', flat=True)),"
        " u.external_identity.tenant, u.is_staff)"
    )
    assert out.split() == ["carol@contoso.com", "Carol", "['Chat.Premium',", "'g-research']",
                           "8f6c2a1e-1b2c-4d5e-9f00-0a1b2c3d4e5f", "False"]


def test_another_tenant_is_refused_with_a_readable_page(page, oidc_server, oidc_provider):
    oidc_provider.set_user("mallory", entra_claims("mallory", tenant="00000000-0000-0000-0000-00000000beef"))
    sign_in_with_provider(page, oidc_server, "mallory", expect_chat=False)
    page.wait_for_selector("[data-testid=signin-refused]")
    assert "another organisation" in page.inner_text("[data-testid=signin-refused]")


def test_another_email_domain_is_refused_with_a_readable_page(page, oidc_server, oidc_provider):
    oidc_provider.set_user("eve", entra_claims("eve", email="eve@fabrikam.com"))
    sign_in_with_provider(page, oidc_server, "eve", expect_chat=False)
    page.wait_for_selector("[data-testid=signin-refused]")
    text = page.inner_text("[data-testid=signin-refused]")
    assert "eve@fabrikam.com" in text and "@contoso.com" in text
