"""Fresh install in a real Chromium: claim with the setup token, log out, log in, wrong password."""

import re

import pytest

pytestmark = pytest.mark.browser
PASSWORD = "Zebra-crossing-42!"


def setup_token_from_log(server):
    match = re.search(r"setup token ([0-9a-f]{24})", server.log())
    assert match, f"the server log does not show the setup token:\n{server.log()}"
    return match.group(1)


def test_first_run_login_logout(live_server_factory, browser_page, screenshot):
    server = live_server_factory()
    page = browser_page
    token = setup_token_from_log(server)

    page.goto(server.url + "/")
    assert page.url.endswith("/setup/")
    page.fill("input[name=setup_token]", "not-the-token")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    assert "setup token is not right" in page.inner_text("main")
    screenshot(page, "first-run-wrong-token")

    page.fill("input[name=setup_token]", token)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=home-greeting]")
    assert "signed in as owner" in page.inner_text("[data-testid=home-greeting]")
    screenshot(page, "first-run-home")

    page.click("[data-testid=logout]")
    page.wait_for_selector("[data-testid=login-form]")
    assert page.goto(server.url + "/setup/").status == 404
    page.console_errors.clear()  # that 404 was the point

    page.goto(server.url + "/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=form-errors]")
    assert "correct username and password" in page.inner_text("[data-testid=form-errors]")
    screenshot(page, "login-wrong-password")

    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=home-greeting]")
    assert page.console_errors == []
