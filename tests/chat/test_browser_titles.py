"""Titles and summaries in a real Chromium against a live Lapis server on the simulator."""

import pytest

from apps.simulator.language import filler, short_title
from tests.chat.conftest import open_chat_page, start_simulated_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def titles_server(tmp_path_factory, azure_simulator):
    """Titles by forced function call (a predictable title), summaries on, user "tina"."""
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="tina", titleMethod="functions"
    )
    yield server
    server.stop()


def open_page(browser, server):
    return open_chat_page(browser, server, "tina", timeout=20_000)


def send(page, text):
    page.fill("[data-testid=composer-input]", text)
    page.keyboard.press("Enter")


def wait_answers(page, count):
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=message][data-role=assistant][data-status=complete]').length >= n",
        arg=count,
    )


def test_title_appears_live_in_every_tab(browser, titles_server, screenshot):
    page = open_page(browser, titles_server)
    other = open_page(browser, titles_server)  # a second tab, on the home page
    text = "Draft an onboarding checklist for new support engineers"
    expected = short_title(text)
    send(page, text)
    page.wait_for_function(
        "t => document.title === `${t} · Lapis`", arg=expected
    )
    link = page.locator("[data-testid=conversation-link]").first
    assert link.inner_text() == expected
    assert page.inner_text("[data-testid=conversation-title]") == expected
    other.wait_for_function(
        "t => [...document.querySelectorAll('[data-testid=conversation-link]')].some(a => a.textContent === t)",
        arg=expected,
    )
    wait_answers(page, 1)
    page.locator("[data-testid=context-meter]").wait_for()  # filled in after the answer
    screenshot(page, "titles-sidebar-live")
    assert page.console_errors == [] and other.console_errors == []
    page.context.close()
    other.context.close()


def test_summary_marker_on_a_small_window_conversation(browser, titles_server, screenshot):
    page = open_page(browser, titles_server)
    page.select_option("[data-testid=model-picker]", "small-window")
    for n in range(5):
        send(page, f"Note {n}: " + filler(120, n + 7))
        wait_answers(page, n + 1)
        if page.locator("[data-testid=summary-marker]").count():
            break
    marker = page.locator("[data-testid=summary-marker]")
    marker.wait_for()
    assert marker.locator("summary").inner_text().startswith("Summary of earlier messages (")
    assert not page.locator("[data-testid=summary-text]").is_visible()
    marker.locator("summary").click()
    summary_text = page.locator("[data-testid=summary-text]")
    assert summary_text.is_visible() and summary_text.inner_text().strip()
    notice = page.locator("[data-testid=message-notice]:visible").last
    assert "summarised" in notice.inner_text()
    screenshot(page, "summary-marker-expanded")
    page.reload()  # the marker comes back from the server after a reload
    page.locator("[data-testid=summary-marker]").wait_for()
    assert page.console_errors == []
    page.context.close()
