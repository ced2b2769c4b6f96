"""The chat in a real Chromium against a live Lapis server whose models are the simulator."""

import json
import re

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory, azure_simulator):
    """One live server per module, CONFIG_PATH pointing at the simulator, with user "alice"."""
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False
    )
    yield server
    server.stop()


@pytest.fixture
def page(browser, chat_server):
    page = open_chat_page(browser, chat_server, "alice", clipboard=True)
    yield page
    page.context.close()
    print(chat_server.log()[-6000:])  # pytest shows it when the test failed


def last_answer(page):
    return page.locator("[data-testid=message][data-role=assistant]").last


def send(page, text):
    page.fill("[data-testid=composer-input]", text)
    page.keyboard.press("Enter")


def test_send_stream_stop_reload(page, chat_server, screenshot):
    assert "signed in as alice" in page.inner_text("[data-testid=home-greeting]")
    page.select_option("[data-testid=model-picker]", "gpt-4o-mini")
    assert page.locator("[data-testid=simulated-badge]").is_visible()
    groups = page.eval_on_selector_all("[data-testid=model-picker] optgroup", "els => els.map(e => e.label)")
    assert groups[0] == "simulator", "groups in the order of the config file"
    send(page, "Tell me a story [sim:words 3000] [sim:delay chunk=30]")
    answer = last_answer(page)
    page.wait_for_selector("[data-testid=stop]:visible")
    body = answer.locator("[data-testid=message-body]")
    page.wait_for_function("el => el.textContent.length > 0", arg=body.element_handle())
    first = len(body.inner_text())
    page.wait_for_function("([el, n]) => el.textContent.length > n + 20", arg=[body.element_handle(), first])
    assert re.search(r"/c/[0-9a-f-]{36}/$", page.url)
    assert page.inner_text("[data-testid=announcer]") == "Answer started."
    screenshot(page, "chat-streaming")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=stopped]")
    stopped_text = body.inner_text()
    assert page.locator("[data-testid=send]").is_visible()
    page.reload()
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=stopped]")
    assert last_answer(page).locator("[data-testid=message-body]").inner_text() == stopped_text
    assert page.locator("[data-testid=conversation-link]").first.inner_text().startswith("Tell me a story")
    screenshot(page, "chat-stopped-after-reload")
    assert page.console_errors == []


def test_markdown_code_block_and_copy(page, screenshot):
    send(page, "Show code [sim:markdown]")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    answer = last_answer(page)
    assert answer.locator("h1, h2, h3").count() >= 1 and answer.locator("li").count() >= 1
    code = answer.locator("pre code")
    assert code.locator("span[class^=hljs-]").count() > 0, "the code block is highlighted"
    answer.locator("[data-testid=copy-code]").first.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == code.first.text_content() and copied.strip()
    answer.locator("[data-testid=copy-message]").click()
    assert "```python" in page.evaluate("navigator.clipboard.readText()")
    screenshot(page, "chat-markdown")
    assert page.console_errors == []


def test_model_html_runs_nothing_and_external_images_are_not_loaded(page, chat_server, screenshot):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    payload = (
        "[sim:echo] Hi <script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"
        "<svg onload=\"window.pwned=3\"></svg><a href=\"javascript:window.pwned=4\">link</a>"
        "<iframe src=\"javascript:window.pwned=5\"></iframe> ![tracker](https://evil.example/t.png)"
    )
    send(page, payload)
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    answer = last_answer(page)
    # Every image in the answer has loaded or failed (an onerror would have run by now; it must not).
    answer.evaluate(
        "el => Promise.all([...el.querySelectorAll('img')].map(i => i.decode().catch(() => null)))"
        ".then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))))"
    )
    assert page.evaluate("window.pwned") is None
    html = answer.locator("[data-testid=message-body]").inner_html()
    assert "onerror" not in html and "<script" not in html and "javascript:" not in html and "<iframe" not in html
    assert answer.locator("[data-testid=blocked-image]").count() == 1
    assert not [url for url in requests if "evil.example" in url]
    answer.locator("a", has_text="link").click()  # a stripped javascript: link does nothing
    assert page.evaluate("window.pwned") is None
    screenshot(page, "chat-sanitised")


def test_titles_with_html_are_text(page):
    """A title made of the user's HTML (the first words, or a rename) is shown as text everywhere."""
    send(page, "<img src=x onerror=window.pwned=1> <b>bold</b> [sim:echo]")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    current = page.locator(".conversation-item.current")
    assert current.locator("[data-testid=conversation-link]").inner_text().startswith("<img src=x onerror")
    assert page.inner_text("[data-testid=conversation-title]").startswith("<img src=x onerror")
    current.locator("[data-testid=rename]").click()
    page.fill("[data-testid=rename-input]", '<svg onload="window.pwned=2"></svg><i>renamed</i>')
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=conversation-title]:has-text('<i>renamed</i>')")
    for selector in ("[data-testid=sidebar]", "[data-testid=conversation-title]", "[data-role=user]"):
        assert page.locator(f"{selector} img, {selector} svg, {selector} b, {selector} i").count() == 0
    page.reload()
    page.wait_for_selector(".conversation-item.current [data-testid=conversation-link]:has-text('<i>renamed</i>')")
    assert page.title().startswith('<svg onload="window.pwned=2">')
    assert page.locator("[data-testid=sidebar] svg, [data-testid=conversation-title] svg").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.console_errors == []


def test_sidebar_rename_and_delete(page, chat_server, screenshot):
    send(page, "Sidebar check")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    item = page.locator(".conversation-item.current")
    assert item.locator("[data-testid=conversation-link]").inner_text() == "Sidebar check"
    item.locator("[data-testid=rename]").click()
    page.fill("[data-testid=rename-input]", "Renamed chat")
    page.keyboard.press("Enter")
    page.wait_for_selector(".conversation-item.current [data-testid=conversation-link]:has-text('Renamed chat')")
    page.wait_for_selector("[data-testid=conversation-title]:has-text('Renamed chat')")
    page.reload()
    page.wait_for_selector(".conversation-item.current [data-testid=conversation-link]:has-text('Renamed chat')")
    screenshot(page, "chat-sidebar-renamed")
    item = page.locator(".conversation-item.current")
    item.locator("[data-testid=delete]").click()
    item.locator("[data-testid=confirm-delete]").click()
    page.wait_for_url(chat_server.url + "/")
    page.wait_for_selector("[data-chat][data-ready='1']")
    assert page.locator("[data-testid=conversation-link]:has-text('Renamed chat')").count() == 0
    assert page.console_errors == []


def test_regenerate_edit_branches_and_phone_layout(page, chat_server, screenshot):
    send(page, "Branch me [sim:echo]")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    last_answer(page).locator("[data-testid=regenerate]").click()
    page.wait_for_selector("[data-testid=message][data-role=assistant] [data-testid=sibling-label]:has-text('2/2')")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    page.locator("[data-testid=message][data-role=user] [data-testid=edit]").click()
    page.fill("[data-testid=edit-input]", "Edited question [sim:echo]")
    page.click("[data-testid=edit-send]")
    page.wait_for_selector("[data-testid=message][data-role=user] [data-testid=sibling-label]:has-text('2/2')")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]:has-text('Edited question')")
    page.click("[data-testid=message][data-role=user] [data-testid=sibling-prev]")
    page.wait_for_selector("[data-testid=message][data-role=user] [data-testid=sibling-label]:has-text('1/2')")
    assert "Branch me" in page.locator("[data-testid=message][data-role=user]").inner_text()
    page.set_viewport_size({"width": 390, "height": 800})
    screenshot(page, "chat-phone")
    assert page.locator("[data-testid=conversation-list]").is_hidden(), "the closed drawer is out of Tab's way"
    composer = page.locator("[data-testid=composer]").bounding_box()
    page.click("[data-testid=sidebar-toggle]")
    page.wait_for_selector("[data-testid=conversation-list]:visible")
    assert page.locator("[data-testid=composer]").bounding_box() == composer, "the drawer lies over the page"
    screenshot(page, "chat-phone-sidebar")
    page.click("[data-testid=theme-toggle]")
    screenshot(page, "chat-phone-theme")
    page.focus("[data-testid=new-chat]")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=conversation-list]", state="hidden")
    assert page.evaluate("document.activeElement.dataset.testid") == "sidebar-toggle"
    assert page.console_errors == []


def test_upstream_errors_say_what_happened(page, screenshot):
    """A rate limit says when to retry (once); a prompt blocked by the filter says it was the filter."""
    send(page, "Hello [sim:429 retry_after=30]")  # a long wait: reported at once, not retried
    error = page.locator("[data-testid=message][data-role=assistant][data-status=error] [data-testid=message-error]")
    error.wait_for()
    text = error.inner_text()
    assert "rate limit" in text and text.count("30 second") == 1 and " s." not in text
    send(page, "Something [sim:filter_prompt category=violence severity=high]")
    filtered = page.locator(
        "[data-testid=message][data-role=assistant][data-status=filtered] [data-testid=message-error]"
    )
    filtered.wait_for()
    assert "content filter blocked your message: violence (severity high)" in filtered.inner_text()
    screenshot(page, "chat-upstream-errors")
    assert [e for e in page.console_errors if "status of" not in e] == []


def test_conversation_settings_reach_the_model(page, screenshot):
    send(page, "First question")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    page.click("[data-testid=settings-open]")
    page.fill("[data-testid=settings-system-prompt]", "Answer like a ship's captain, briefly.")
    page.fill("[data-testid=settings-temperature]", "0.4")
    page.select_option("[data-testid=settings-image-detail]", "low")
    screenshot(page, "chat-settings")
    page.click("[data-testid=settings-save]")
    page.locator("[data-testid=settings-panel]").wait_for(state="hidden")
    send(page, "Second question [sim:report]")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=message][data-role=assistant][data-status=complete]').length >= 2"
    )
    body = page.locator("[data-testid=message][data-role=assistant]").last.locator("[data-testid=message-body]")
    report = json.loads(body.inner_text().split("REPORT ", 1)[1])
    assert report["system"].startswith("Answer like a ship's captain")
    assert report["params"]["temperature"] == 0.4
    page.reload()
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    page.click("[data-testid=settings-open]")
    assert page.input_value("[data-testid=settings-image-detail]") == "low"
    assert page.input_value("[data-testid=settings-temperature]") == "0.4"
    assert page.console_errors == []


def test_a_short_rate_limit_wait_is_shown_until_text_arrives(page):
    """Azure's short 429 is retried; meanwhile the answer says Azure is busy and when it retries."""
    send(page, "Patience [sim:429 retry_after=2 times=1 key=browser-retry] [sim:echo]")
    retry = last_answer(page).locator("[data-testid=message-retry]")
    retry.wait_for(state="visible")
    assert "Azure is busy (429). Lapis tries again in 2 seconds." == retry.inner_text()
    page.locator("[data-testid=message][data-role=assistant][data-status=complete]").last.wait_for()
    assert last_answer(page).locator("[data-testid=message-body]").inner_text().startswith("Patience")
    assert retry.is_hidden()
    assert page.console_errors == []
