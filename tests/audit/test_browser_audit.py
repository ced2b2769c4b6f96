"""In Chromium against a live Lapis: an admin activates two config versions, and the audit log
lists the activation with its YAML diff (read-only, filterable by action)."""

import pytest

from tests.azure.test_config import EXAMPLES, TEAM_ENV
from tests.conftest import TEST_PASSWORD, login

pytestmark = pytest.mark.browser


def activate(page, url, text):
    page.goto(url + "/admin/azure/configversion/add/")
    page.fill("textarea[name=text]", text)
    page.click("[data-testid=validate]")
    page.wait_for_selector("[data-testid=config-preview]")
    page.click("[data-testid=activate]")
    page.wait_for_selector("[data-testid=version-active]")


def test_audit_log_lists_activation_with_diff(live_server_factory, browser_page, screenshot):
    server = live_server_factory(extra_env=TEAM_ENV)
    server.create_user("admin", TEST_PASSWORD, staff=True)
    page = browser_page
    login(page, server.url, "admin")
    team = (EXAMPLES / "team.yaml").read_text()
    activate(page, server.url, team)
    activate(page, server.url, team.replace("          gpt-4.1: true\n", ""))

    page.goto(server.url + "/admin/audit/auditentry/?action__exact=config.activate")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert "activated config version 2 (was version 1)" in rows.first.inner_text()
    assert "admin" in rows.first.inner_text()
    assert page.locator("a[href*='/admin/audit/auditentry/add/']").count() == 0  # no "Add"
    rows.first.locator("th a, td a").first.click()
    diff = page.locator("[data-testid=audit-diff]")
    diff.wait_for()
    assert "-          gpt-4.1: true" in diff.inner_text().splitlines()
    assert page.locator("[data-testid=audit-diff] .diff-del").count() == 1
    assert page.locator("input[type=submit][name=_save]").count() == 0  # read-only
    screenshot(page, "audit-activation-diff")

    page.goto(server.url + "/admin/audit/auditentry/?action__exact=signin")
    assert "admin signed in" in page.locator("#result_list").inner_text()
    assert page.console_errors == []
