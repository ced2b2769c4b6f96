"""The API keys page in a real Chromium: create (shown once), use it with the SDK, revoke."""

import openai
import pytest

from tests.conftest import TEST_PASSWORD, login
from tests.gateway.conftest import make_key, sdk

pytestmark = pytest.mark.browser


def test_create_use_and_revoke_a_key(browser_page, lapis, screenshot):
    page = browser_page
    make_key(lapis, "kim", password=TEST_PASSWORD)  # in the API group, with a first key
    login(page, lapis.url, "kim")
    page.click("[data-testid=nav-api-keys]")
    page.fill("input[name=name]", "my notebook")
    page.select_option("select[name=expires_in]", "30")
    page.click("[data-testid=create-key]")
    key = page.input_value("[data-testid=new-key]")
    assert key.startswith("lapis-") and len(key) > 40
    assert page.inner_text("[data-testid=base-url]") == lapis.url + "/v1"
    screenshot(page, "api-keys-created")
    assert page.console_errors == []  # no CSP violation, no script error

    # The key works with the SDK as it is.
    assert "gpt-4o" in [m.id for m in sdk(lapis, key).models.list()]

    # Shown once: a reload shows the prefix only, never the key.
    page.goto(lapis.url + "/settings/api-keys/")
    assert key not in page.content()
    row = page.locator(f"[data-testid=key-row][data-prefix='{key[:12]}']")
    assert row.locator("[data-testid=key-state]").inner_text() == "active"
    row.locator("[data-testid=revoke-key]").click()
    row = page.locator(f"[data-testid=key-row][data-prefix='{key[:12]}']")
    assert row.locator("[data-testid=key-state]").inner_text() == "revoked"
    screenshot(page, "api-keys-revoked")
    with pytest.raises(openai.AuthenticationError):
        sdk(lapis, key).models.list()


def test_without_the_permission_the_page_says_so(browser_page, lapis):
    make_key(lapis, "ned", groups=("no-api",), grant=False, password=TEST_PASSWORD)
    login(browser_page, lapis.url, "ned")
    browser_page.goto(lapis.url + "/settings/api-keys/")
    assert "not enabled" in browser_page.inner_text("[data-testid=keys-disabled]")
    assert browser_page.locator("[data-testid=create-key]").count() == 0
