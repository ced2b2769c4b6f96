"""Share links and imports in a real Chromium against a live Lapis whose models are the simulator."""

import re
from pathlib import Path

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser
FIXTURES = Path(__file__).resolve().parent.parent / "transfer" / "fixtures"


@pytest.fixture(scope="module")
def server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False
    )
    server.create_user("bob", TEST_PASSWORD)
    server.create_user("carol", TEST_PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def pages(browser, server):
    opened = []

    def open_as(username):
        page = open_chat_page(browser, server, username, timeout=20_000)
        opened.append(page)
        return page

    yield open_as
    for page in opened:
        page.context.close()
    print(server.log()[-6000:])


def test_open_a_share_link_as_another_user_and_continue_it_as_a_copy(pages, server, screenshot):
    alice = pages("alice")
    alice.fill("[data-testid=composer-input]", "Show code [sim:markdown]")
    alice.keyboard.press("Enter")
    alice.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    alice.click("[data-testid=share-open]")
    alice.wait_for_selector("[data-testid=share-form]")
    alice.fill("[data-testid=share-users]", "bob")
    alice.click("[data-testid=share-create]")
    link = alice.locator("[data-testid=share-link]").first
    href = link.get_attribute("href")
    assert re.fullmatch(r"/s/[A-Za-z0-9_-]{43}/", href)
    screenshot(alice, "share-created")

    carol = pages("carol")
    response = carol.goto(server.url + href)
    assert response.status == 404

    bob = pages("bob")
    bob.goto(server.url + href)
    bob.wait_for_selector("[data-shared][data-ready='1']")
    assert bob.locator(".flash").count() == 0
    assert bob.locator("[data-testid=message]").count() == 2
    answer = bob.locator("[data-testid=message][data-role=assistant]").last
    assert answer.locator("h1, h2, h3").count() >= 1 and answer.locator("li").count() >= 1
    assert answer.locator("pre code span[class^=hljs-]").count() > 0  # the chat's own renderer
    assert bob.locator("[data-testid=message][data-role=user]").inner_text().count("Show code") == 1
    screenshot(bob, "share-viewed-by-bob")
    bob.click("[data-testid=continue-copy]")
    bob.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    bob.wait_for_selector("[data-chat][data-ready='1']")
    bob.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    assert bob.locator("[data-testid=conversation-link]").count() == 1
    bob.fill("[data-testid=composer-input]", "And one more thing")
    bob.keyboard.press("Enter")
    bob.wait_for_function(
        "() => document.querySelectorAll('[data-testid=message][data-role=assistant][data-status=complete]').length === 2"
    )
    screenshot(bob, "share-continued-by-bob")

    # Revoked: the link is gone for Bob, his copy stays.
    alice.goto(server.url + "/shares/")
    alice.click("[data-testid=share-revoke]")
    alice.wait_for_selector("[data-testid=share-revoked]")
    copy_url = bob.url
    assert bob.goto(server.url + href).status == 404
    bob.goto(copy_url)
    bob.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    for page in (alice, bob, carol):
        assert [e for e in page.console_errors if "404" not in e] == []


def test_an_imported_chatgpt_conversation_shows_its_branches(pages, server, screenshot):
    alice = pages("alice")
    alice.click("[data-testid=transfer-link]")
    alice.set_input_files("[data-testid=import-file]", str(FIXTURES / "chatgpt_conversations.json"))
    alice.click("[data-testid=import-submit]")
    alice.wait_for_selector("[data-testid=import-report]")
    assert alice.locator("[data-testid=import-imported]").count() == 2
    assert "Only a tool ran" in alice.inner_text("[data-testid=import-skipped]")
    screenshot(alice, "import-report")
    alice.click("[data-testid=import-link]:has-text('Tide tables for Bergen')")
    alice.wait_for_selector("[data-chat][data-ready='1']")
    messages = alice.locator("[data-testid=message]")
    messages.last.wait_for()
    assert messages.last.locator("[data-testid=message-body]").inner_text() == "Low tide is at 00:01 and 12:24."
    follow_up = alice.locator("[data-testid=message][data-role=user]").last
    assert follow_up.locator("[data-testid=sibling-label]").inner_text() == "2/2"
    first_answer = alice.locator("[data-testid=message][data-role=assistant]").first
    assert first_answer.locator("[data-testid=sibling-label]").inner_text() == "2/2"
    follow_up.locator("[data-testid=sibling-prev]").click()
    alice.wait_for_selector("[data-testid=message][data-role=user] >> text=And what does this chart say?")
    assert "spring tide" in alice.locator("[data-testid=message][data-role=assistant]").last.inner_text()
    first_answer = alice.locator("[data-testid=message][data-role=assistant]").first
    first_answer.locator("[data-testid=sibling-prev]").click()
    alice.wait_for_selector("[data-testid=message][data-role=assistant] >> text=12 h 25 min")
    assert alice.locator("[data-testid=message]").count() == 2
    screenshot(alice, "import-branches")
    assert alice.console_errors == []


def test_hostile_imported_text_stays_inert_on_the_shared_page(pages, server, tmp_path, screenshot):
    title = "<img src=x onerror=window.pwned=1> title"
    hostile = [{"title": title, "chat": {"history": {"currentId": "2", "messages": {
        "1": {"parentId": None, "role": "user", "content": "<script>window.pwned=2</script> question"},
        "2": {"parentId": "1", "role": "assistant", "content":
              "Answer <img src=x onerror=window.pwned=3> [link](javascript:window.pwned=4) "
              "![remote](https://example.invalid/t.png) <iframe src=/></iframe>\n\n**bold**"},
    }}}}]
    path = tmp_path / "hostile.json"
    path.write_text(__import__("json").dumps(hostile))
    alice = pages("alice")
    alice.click("[data-testid=transfer-link]")
    alice.set_input_files("[data-testid=import-file]", str(path))
    alice.click("[data-testid=import-submit]")
    alice.click("[data-testid=import-link]")
    alice.wait_for_selector("[data-testid=message][data-role=assistant]")
    alice.click("[data-testid=share-open]")
    alice.click("[data-testid=share-create]")
    href = alice.locator("[data-testid=share-link]").first.get_attribute("href")

    carol = pages("carol")  # no audience named: every signed-in user
    carol.goto(server.url + href)
    carol.wait_for_selector("[data-shared][data-ready='1']")
    assert carol.inner_text("[data-testid=shared-title]") == title
    answer = carol.locator("[data-testid=message][data-role=assistant] [data-testid=message-body]")
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("iframe, script, img[onerror], a[href^=javascript]").count() == 0
    assert answer.locator("[data-testid=blocked-image]").count() == 1  # off-site image not loaded
    user_text = carol.locator("[data-testid=message][data-role=user] [data-testid=message-body]").inner_text()
    assert user_text == "<script>window.pwned=2</script> question"
    carol.wait_for_timeout(300)
    assert carol.evaluate("window.pwned") is None
    screenshot(carol, "share-hostile-inert")
