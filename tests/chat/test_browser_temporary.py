"""A temporary chat in Chromium: answered, never in the sidebar, and nothing left after reload."""

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(tmp_path_factory, azure_simulator, username="tina", titleConvo=False, summarize=False)
    yield server
    server.stop()


def test_temporary_chat_leaves_nothing_after_reload(browser, server, screenshot):
    page = open_chat_page(browser, server, "tina")
    # An ordinary chat first, so the sidebar has something to compare with.
    page.fill("[data-testid=composer-input]", "A chat to keep")
    page.click("[data-testid=send]")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    page.wait_for_selector("[data-testid=conversation-link]")
    page.goto(server.url + "/")
    page.wait_for_selector("[data-chat][data-ready='1']")

    page.check("[data-testid=temporary-toggle]")
    assert page.locator("[data-testid=temporary-note]").is_visible()
    page.fill("[data-testid=composer-input]", "Forget this afterwards")
    page.click("[data-testid=send]")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    assert page.locator("[data-chat]").get_attribute("data-temporary") == "1"
    assert page.url == server.url + "/"  # no address of its own
    assert page.locator("[data-testid=conversation-link]").all_inner_texts() == ["A chat to keep"]
    listed = page.request.get(server.url + "/api/chat/conversations/").json()["items"]
    assert len(listed) == 1
    screenshot(page, "temporary-chat")

    page.reload()
    page.wait_for_selector("[data-chat][data-ready='1']")
    assert page.locator("[data-testid=message]").count() == 0
    assert page.locator("[data-testid=conversation-link]").all_inner_texts() == ["A chat to keep"]
    assert not page.locator("[data-testid=temporary-toggle]").is_checked()
    # Gone on the server too (its last socket closed with the reload).
    server.shell(
        "import time; from apps.chat.models import Conversation, UsageRecord\n"
        "for _ in range(100):\n"
        "    if not Conversation.objects.filter(temporary=True).exists(): break\n"
        "    time.sleep(0.1)\n"
        "assert not Conversation.objects.filter(temporary=True).exists(), 'temporary chat left'\n"
        "assert Conversation.objects.count() == 1\n"
        "assert UsageRecord.objects.filter(conversation__isnull=True).count() == 1\n"
    )
    assert page.console_errors == []
