"""The admin flow in a real Chromium against a real Lapis server (Daphne subprocess)."""

import re

import pytest

from tests.azure.test_config import EXAMPLES, TEAM_ENV
from tests.conftest import TEST_PASSWORD, login

pytestmark = pytest.mark.browser
CANARY = "north-canary-7f3a"


def test_admin_load_preview_activate_rollback(live_server_factory, browser_page, screenshot):
    server = live_server_factory(extra_env=TEAM_ENV)
    server.create_user("admin", TEST_PASSWORD, staff=True)
    server.create_user("plain", TEST_PASSWORD, staff=False)
    page = browser_page
    login(page, server.url, "admin")

    page.goto(server.url + "/admin/azure/configversion/add/")
    page.set_input_files("input[type=file]", str(EXAMPLES / "broken.yaml"))
    page.click("[data-testid=validate]")
    page.wait_for_selector("[data-testid=config-errors]")
    assert page.locator("[data-testid=config-error]").count() == 12
    lines = page.locator("[data-testid=problem-line]").evaluate_all("rows => rows.map(r => r.dataset.line)")
    assert {"5", "8", "12", "13", "14", "19", "21", "32", "33"} <= set(lines)
    assert "UNSET_VARIABLE_FOR_TEST" in page.locator("[data-line='14']").inner_text()
    screenshot(page, "azure-admin-errors")

    page.goto(server.url + "/admin/azure/configversion/add/")
    page.set_input_files("input[type=file]", str(EXAMPLES / "team.yaml"))
    page.click("[data-testid=validate]")
    page.wait_for_selector("[data-testid=config-preview]")
    keys = page.locator("[data-testid=preview-model]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == ["gpt-4o", "gpt-4o-mini", "dall-e-3", "gpt-4.1", "o3-mini", "gpt-35-turbo", "phi-4", "gpt-4o-2024-08-06"]
    assert page.locator("[data-testid=diff-added]").count() == 8
    assert "https://gw.contoso.example/aoai/contoso-apim/deployments/gpt35/chat/completions" in page.content()
    assert CANARY not in page.content()
    screenshot(page, "azure-admin-preview")
    page.click("[data-testid=activate]")
    page.wait_for_selector("[data-testid=version-active]")
    first_url = page.url

    page.goto(server.url + "/models/")
    listed = page.locator("[data-testid=model]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert listed == ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "gpt-35-turbo", "phi-4", "gpt-4o-2024-08-06"]
    assert page.locator("[data-testid=image-model]").evaluate_all("r => r.map(x => x.dataset.key)") == ["dall-e-3"]
    assert "GPT-4o (EU)" in page.content() and CANARY not in page.content()
    screenshot(page, "azure-models")

    # A second version (paste), then roll back to the first.
    page.goto(server.url + "/admin/azure/configversion/add/")
    page.fill("textarea[name=text]", (EXAMPLES / "team.yaml").read_text().replace("          gpt-4.1: true\n", ""))
    page.click("[data-testid=validate]")
    page.wait_for_selector("[data-testid=config-preview]")
    assert page.locator("[data-testid=diff-removed]").all_inner_texts() == ["gpt-4.1"]
    page.click("[data-testid=activate]")
    page.wait_for_selector("[data-testid=version-active]")
    page.goto(server.url + "/models/")
    assert page.locator("[data-key='gpt-4.1']").count() == 0
    page.goto(first_url)
    page.click("[data-testid=activate-version]")
    page.wait_for_selector("[data-testid=version-active]")
    page.goto(server.url + "/models/")
    assert page.locator("[data-key='gpt-4.1']").count() == 1
    assert page.console_errors == []

    # A signed-in non-staff user gets 403 on every admin page here.
    page.context.clear_cookies()
    login(page, server.url, "plain")
    version = re.search(r"/(\d+)/$", first_url).group(1)
    for path in ["/admin/azure/configversion/", "/admin/azure/configversion/add/", f"/admin/azure/configversion/{version}/"]:
        assert page.goto(server.url + path).status == 403
    assert page.goto(server.url + "/models/").status == 200


def test_bad_config_path_stops_live_server(live_server_factory):
    with pytest.raises(RuntimeError) as info:
        live_server_factory(extra_env={"CONFIG_PATH": str(EXAMPLES / "broken.yaml")})
    log = str(info.value)
    assert "lapis.E001" in log
    for needle in ["titleModel", "apikey", "UNSET_VARIABLE_FOR_TEST", "gpt-4o-mini", "Authorization", "serverless group needs baseURL"]:
        assert needle in log
