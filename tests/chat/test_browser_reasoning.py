"""A Responses-API model's reasoning summary in a real Chromium: collapsed above the answer,
and still there after a reload."""

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server
from tests.chat.test_responses import MODEL, responses_group

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def reasoning_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="rita", titleConvo=False, summarize=False,
        extra_groups=[responses_group(azure_simulator)],
    )
    yield server
    server.stop()


def test_reasoning_shows_collapsed_above_the_answer(browser, reasoning_server, screenshot):
    page = open_chat_page(browser, reasoning_server, "rita")
    try:
        page.select_option("[data-testid=model-picker]", MODEL)
        page.fill("[data-testid=composer-input]", "Why quotas? [sim:words 40] [sim:delay chunk=15]")
        page.keyboard.press("Enter")
        answer = page.locator("[data-testid=message][data-role=assistant]").last
        reasoning = answer.locator("[data-testid=message-reasoning]")
        reasoning.wait_for(state="visible")  # shown while the answer is still being written
        page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
        for _ in range(2):  # as streamed, then as loaded after a reload
            assert reasoning.evaluate("el => el.open") is False
            above = reasoning.evaluate(
                "el => !!(el.compareDocumentPosition(el.parentElement.querySelector("
                "'[data-testid=message-body]')) & Node.DOCUMENT_POSITION_FOLLOWING)"
            )
            assert above, "the reasoning comes before the answer"
            assert not reasoning.locator("[data-testid=message-reasoning-text]").is_visible()
            reasoning.locator("summary").click()
            text = reasoning.locator("[data-testid=message-reasoning-text]")
            assert "Reading the question" in text.inner_text()
            assert "Reading the question" not in answer.locator("[data-testid=message-body]").inner_text()
            screenshot(page, "chat-reasoning")
            page.reload()
            page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
            answer = page.locator("[data-testid=message][data-role=assistant]").last
            reasoning = answer.locator("[data-testid=message-reasoning]")
            reasoning.wait_for(state="visible")
        assert page.console_errors == []
    finally:
        page.context.close()
