"""Two tabs of one user, and a lost tail, in a real Chromium against live Lapis servers.

- A second tab showing the conversation follows an answer the first tab started, live, to its
  end; Stop in either tab stops it. Its server waits 600 s before a silent answer is asked for
  again (CHAT_STREAM_SILENCE), so only following the new answer can make the second tab live.
- A channel layer that drops the last deltas and the ``done`` of every answer
  (tests.chat.lossy_layer): the page notices the silence after CHAT_STREAM_SILENCE (1 s here)
  and shows the complete answer from the database, finished.
"""

import json
import re

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server

pytestmark = pytest.mark.browser

FINISHED = "[data-testid=message][data-role=assistant]:not([data-status=streaming])"


@pytest.fixture(scope="module")
def tabs_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False,
        extra_env={"CHAT_STREAM_SILENCE": "600"},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lossy_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False,
        extra_env={
            "DJANGO_SETTINGS_MODULE": "tests.chat.lossy_settings",
            "CHAT_STREAM_SILENCE": "1",
            "LAPIS_TEST_KEEP_DELTAS": "2",
        },
    )
    yield server
    server.stop()


def second_tab(page, url):
    """Another tab of the same browser (same session) on ``url``, its socket connected."""
    tab = page.context.new_page()
    tab.console_errors = []
    tab.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: tab.console_errors.append(str(exc)))
    tab.set_default_timeout(15_000)
    tab.goto(url)
    tab.wait_for_selector("[data-chat][data-connected='1']")
    return tab


def send(page, text):
    page.fill("[data-testid=composer-input]", text)
    page.keyboard.press("Enter")


def answers(page):
    return page.locator("[data-testid=message][data-role=assistant]")


def body_of(page, index):
    return answers(page).nth(index).locator("[data-testid=message-body]")


def stored_answer(server, conversation_id, index):
    """(status, content) of the conversation's ``index``-th answer, from the database."""
    out = server.shell(
        "import json; from apps.chat.models import Message;"
        f"m = list(Message.objects.filter(conversation_id={conversation_id!r}, role='assistant')"
        f".order_by('created'))[{index}]; print(json.dumps([m.status, m.content]))"
    )
    return json.loads(out)


def plain(text):
    return " ".join(text.split())


def test_second_tab_follows_an_answer_live_and_stops_it(browser, tabs_server, screenshot):
    first = open_chat_page(browser, tabs_server, "alice")
    try:
        send(first, "Hello [sim:echo]")
        first.wait_for_selector(FINISHED)
        conversation_id = re.search(r"/c/([0-9a-f-]{36})/$", first.url).group(1)
        second = second_tab(first, first.url)
        assert answers(second).count() == 1

        send(first, "Tell me a story [sim:words 120] [sim:delay chunk=40]")
        streaming = second.locator("[data-testid=message][data-role=assistant]").nth(1)
        # Text in the second tab while the answer is still being written: it follows live.
        second.wait_for_function(
            "el => el.dataset.status === 'streaming'"
            " && el.querySelector('[data-testid=message-body]').textContent.trim().length > 0",
            arg=streaming.element_handle(),
        )
        screenshot(second, "second-tab-streaming")
        for tab in (first, second):
            tab.wait_for_selector(f"{FINISHED} >> nth=1")
            tab.wait_for_selector("[data-testid=send]:visible")
            assert tab.locator("[data-testid=stop]").is_hidden()
        status, content = stored_answer(tabs_server, conversation_id, 1)
        assert status == "complete"
        assert plain(body_of(second, 1).inner_text()) == plain(content)
        assert plain(body_of(first, 1).inner_text()) == plain(content)

        # Stop in the tab that did not send it stops the answer in both.
        send(first, "A long one [sim:words 3000] [sim:delay chunk=30]")
        second.wait_for_function(
            "el => el && el.dataset.status === 'streaming'"
            " && el.querySelector('[data-testid=message-body]').textContent.trim().length > 0",
            arg=answers(second).nth(2).element_handle(),
        )
        second.click("[data-testid=stop]")
        for tab in (first, second):
            tab.wait_for_selector("[data-testid=message][data-role=assistant][data-status=stopped]")
            assert tab.locator("[data-testid=stop]").is_hidden()
        status, content = stored_answer(tabs_server, conversation_id, 2)
        assert status == "stopped"
        assert plain(body_of(second, 2).inner_text()) == plain(content)
        assert plain(body_of(first, 2).inner_text()) == plain(content)
        screenshot(second, "second-tab-stopped")
        assert first.console_errors == [] and second.console_errors == []
    finally:
        first.context.close()
        print(tabs_server.log()[-6000:])


def test_a_lost_tail_is_recovered_from_the_database(browser, lossy_server, screenshot):
    page = open_chat_page(browser, lossy_server, "alice")
    try:
        send(page, "Tell me a story [sim:words 80] [sim:delay chunk=30]")
        page.wait_for_selector(FINISHED, timeout=30_000)
        conversation_id = re.search(r"/c/([0-9a-f-]{36})/$", page.url).group(1)
        status, content = stored_answer(lossy_server, conversation_id, 0)
        assert status == "complete" and len(content.split()) >= 60
        assert page.locator("[data-testid=message][data-role=assistant][data-status=complete]").count() == 1
        assert plain(body_of(page, 0).inner_text()) == plain(content)
        page.wait_for_selector("[data-testid=send]:visible")
        assert page.locator("[data-testid=stop]").is_hidden()
        log = lossy_server.log()
        # The loss really happened: the tail deltas and the done never went out live.
        assert "lossy layer dropped done" in log and "lossy layer dropped delta 3 " in log
        screenshot(page, "lost-tail-recovered")
        assert page.console_errors == []
    finally:
        page.context.close()
        print(lossy_server.log()[-6000:])
