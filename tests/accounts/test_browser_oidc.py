"""Company sign-in in a real Chromium, through a real OpenID Connect provider."""

import pytest
import yaml

from tests.accounts.conftest import sign_in_with_provider, start_oidc_server
from tests.oidc.provider import entra_claims

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def oidc_server(tmp_path_factory, oidc_provider, azure_simulator):
    """Lapis signing in with the provider; the simulator's models, gpt-4o for "Chat.Premium"."""
    data = yaml.safe_load(azure_simulator.config_yaml(simulated=True, titleConvo=False, summarize=False))
    data["endpoints"]["azureOpenAI"]["groups"][0]["models"]["gpt-4o"]["access"] = ["Chat.Premium"]
    server = start_oidc_server(tmp_path_factory.mktemp("oidc-live"), oidc_provider,
                               config_text=yaml.safe_dump(data, sort_keys=False),
                               extra_env={"OIDC_ALLOWED_EMAIL_DOMAINS": "contoso.com",
                                          "LAPIS_SIM_KEY": azure_simulator.api_key})
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


def picker_models(page):
    page.wait_for_selector("[data-chat][data-ready='1']")
    return page.eval_on_selector_all("[data-testid=model-picker] option", "els => els.map(e => e.value)")


def test_only_allowed_models_and_a_removed_group_takes_effect_at_next_sign_in(
    page, oidc_server, oidc_provider, screenshot
):
    oidc_provider.set_user("pia", entra_claims("pia", roles=["Chat.Premium"]))
    sign_in_with_provider(page, oidc_server, "pia")
    assert "gpt-4o" in picker_models(page)
    # Entra drops the role; nothing changes until the next sign-in, which applies it.
    oidc_provider.set_user("pia", entra_claims("pia", roles=[]))
    page.click("[data-testid=logout]")
    page.wait_for_url("**/login/**")
    sign_in_with_provider(page, oidc_server, "pia")
    models = picker_models(page)
    assert "gpt-4o" not in models and "gpt-4o-mini" in models
    screenshot(page, "oidc-without-premium")
    page.goto(oidc_server.url + "/models/")
    assert page.locator("[data-testid=model][data-key=gpt-4o]").count() == 0
    assert page.locator("[data-testid=model][data-key=gpt-4o-mini]").count() == 1
