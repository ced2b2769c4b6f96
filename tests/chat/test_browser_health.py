"""The model-health banner in a real Chromium against a live Lapis server on the simulator:
it appears while a deployment fails and goes when it recovers."""

import os

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server
from tests.simulator_fixture import CHAT_VERSION

pytestmark = pytest.mark.browser
BANNER = "[data-testid=model-health]"


def region(simulator, name, label):
    return {
        "group": name, "apiKey": "${LAPIS_SIM_KEY}", "endpoint": simulator.url, "version": CHAT_VERSION,
        "models": {f"gpt-4o-{name}": {"deploymentName": f"gpt-4o-{name}", "label": label}},
    }


@pytest.fixture(scope="module")
def health_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="hana",
        extra_env={"HEALTH_POLL_SECONDS": "1"},
        titleConvo=False, summarize=False,
        extra_groups=[region(azure_simulator, "eu", "gpt-4o (EU)"), region(azure_simulator, "us", "gpt-4o (US)")],
        pools={"gpt-4o-pool": {"label": "GPT-4o", "members": ["gpt-4o-eu", "gpt-4o-us"]}},
    )
    yield server
    server.stop()


def send(page, text):
    page.fill("[data-testid=composer-input]", text)
    page.keyboard.press("Enter")


def wait_answers(page, count, status="complete"):
    page.wait_for_function(
        "([n, s]) => document.querySelectorAll(`[data-testid=message][data-role=assistant][data-status=${s}]`).length >= n",
        arg=[count, status],
    )


def banner_shows(page, text):
    page.wait_for_function(
        "([sel, t]) => { const b = document.querySelector(sel); return b && !b.hidden && b.textContent === t; }",
        arg=[BANNER, text], timeout=15_000,
    )


def banner_gone(page, timeout=20_000):
    page.wait_for_function("sel => document.querySelector(sel).hidden", arg=BANNER, timeout=timeout)


def test_banner_while_a_pool_member_is_throttled_and_after_it_recovers(
    browser, health_server, azure_simulator, screenshot
):
    azure_simulator.reset()
    page = open_chat_page(browser, health_server, "hana", timeout=20_000)
    assert page.locator(BANNER).is_hidden()
    page.select_option("[data-testid=model-picker]", "gpt-4o-pool")
    send(page, "Hello [sim:429 retry_after=6 deployment=gpt-4o-eu]")
    wait_answers(page, 1)  # answered by the US member, no error shown
    assert page.locator("[data-testid=message][data-role=assistant][data-status=error]").count() == 0
    banner_shows(page, "gpt-4o (EU) is rate-limited; answers come from gpt-4o (US).")
    screenshot(page, "health-banner-pool")
    # Only for the model the picker has: another model shows none.
    page.select_option("[data-testid=model-picker]", "gpt-4o")
    banner_gone(page, timeout=3_000)
    page.select_option("[data-testid=model-picker]", "gpt-4o-pool")
    assert page.locator(BANNER).is_visible()
    # The Retry-After runs out: EU is called again, answers, and the banner stays gone.
    banner_gone(page)
    send(page, "And now?")
    wait_answers(page, 2)
    assert [e["deployment"] for e in azure_simulator.requests() if e["deployment"]][-1] == "gpt-4o-eu"
    assert page.locator(BANNER).is_hidden()
    assert page.console_errors == []
    page.context.close()


def test_banner_while_a_model_fails_goes_at_its_next_good_answer(
    browser, health_server, azure_simulator, screenshot
):
    azure_simulator.reset()
    page = open_chat_page(browser, health_server, "hana", timeout=30_000)
    page.select_option("[data-testid=model-picker]", "gpt-4o")
    send(page, "Broken [sim:500]")
    wait_answers(page, 1, status="error")
    banner_shows(page, "gpt-4o is failing right now; answers may be slow or fail.")
    screenshot(page, "health-banner-failing")
    send(page, "Working again")
    wait_answers(page, 1)
    banner_gone(page, timeout=5_000)
    assert page.console_errors == []
    page.context.close()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="a view shared by processes needs Redis (REDIS_URL)")
def test_a_cool_down_seen_by_another_process_reaches_the_banner_and_the_pool(
    browser, health_server, azure_simulator
):
    """This test process plays a second Lapis process: the EU 429 it records goes through
    Redis to the live server, which shows the banner and sends its next answer to US at once."""
    from apps.azure import health

    azure_simulator.reset()
    health.record(("eu", "gpt-4o-eu"), outcome=health.RATE_LIMITED, status=429, retry_after=20)
    try:
        page = open_chat_page(browser, health_server, "hana", timeout=20_000)
        page.select_option("[data-testid=model-picker]", "gpt-4o-pool")
        banner_shows(page, "gpt-4o (EU) is rate-limited; answers come from gpt-4o (US).")
        send(page, "Which region?")
        wait_answers(page, 1)
        assert [e["deployment"] for e in azure_simulator.requests() if e["deployment"]] == ["gpt-4o-us"]
        page.context.close()
    finally:
        health.record(("eu", "gpt-4o-eu"), outcome=health.OK)
        health.forget()
