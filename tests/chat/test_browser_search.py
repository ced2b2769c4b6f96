"""Search and organising the sidebar in a real Chromium against a live Lapis server: search from
the keyboard and open a result at its message (on another branch), folders, pins, date groups
and a bulk delete with one confirmation."""

import json

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server

pytestmark = pytest.mark.browser

SEED = """
import json
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.chat.models import Conversation, Message
user = get_user_model().objects.get(username="sam")
other = get_user_model().objects.create_user("olga")
now = timezone.now()
def chain(conversation, texts, parent=None):
    for i, text in enumerate(texts):
        parent = Message.objects.create(conversation=conversation, parent=parent, content=text,
                                        role="user" if i % 2 == 0 else "assistant")
    return parent
out = {}
garden = Conversation.objects.create(owner=user, model_key="gpt-4o", title="Garden plans")
root = chain(garden, ["Which flowers for a sunny bed?"])
side = chain(garden, ["Plant <img src=x data-x=1> heliotrope near the path, it smells of vanilla."], parent=root)
main = chain(garden, [f"Answer {i}: lavender, salvia and roses keep going." for i in range(1, 40)], parent=root)
Conversation.objects.filter(id=garden.id).update(current_leaf=main, updated=now)
out["garden"], out["heliotrope"] = str(garden.id), str(side.id)
Conversation.objects.create(owner=other, model_key="gpt-4o", title="Olga's heliotrope")
for key, days in [("today", 0), ("yesterday", 1), ("week", 3), ("old", 45)]:
    c = Conversation.objects.create(owner=user, model_key="gpt-4o", title=f"Chat {key}")
    chain(c, [f"hello {key}"])
    Conversation.objects.filter(id=c.id).update(updated=now - timedelta(days=days, minutes=5))
    out[key] = str(c.id)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def search_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(tmp_path_factory, azure_simulator, username="sam", titleConvo=False)
    ids = json.loads(server.shell(SEED).strip().splitlines()[-1])
    yield server, ids
    server.stop()


def test_search_from_the_keyboard_opens_the_result_at_its_message(browser, search_server, screenshot):
    server, ids = search_server
    page = open_chat_page(browser, server, "sam")
    page.keyboard.press("Control+k")  # from the composer, which has the focus
    assert page.evaluate("document.activeElement.dataset.testid") == "search-input"
    page.keyboard.type("heliotr")
    result = page.locator("[data-testid=search-result]")
    result.first.wait_for()
    assert result.count() == 1  # Olga's conversation is not Sam's
    assert result.first.locator("mark").first.inner_text().lower() == "heliotrope"
    assert page.locator("[data-search-results] img").count() == 0  # text, never markup
    assert page.locator("[data-testid=conversation-list]").is_hidden()
    screenshot(page, "search-results")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    target = page.locator(f"[data-message-id='{ids['heliotrope']}'][data-search-target='1']")
    target.wait_for()
    assert page.url.endswith(f"/c/{ids['garden']}/#m={ids['heliotrope']}")
    assert "heliotrope" in target.inner_text()
    # On screen, although 40 messages of the other branch came after it and the list scrolls.
    box, pane = target.bounding_box(), page.locator("[data-message-list]").bounding_box()
    assert pane["y"] <= box["y"] and box["y"] + min(box["height"], 40) <= pane["y"] + pane["height"]
    screenshot(page, "search-opened-at-message")
    # The branch switch is kept: a reload shows the branch with that message.
    page.goto(f"{server.url}/c/{ids['garden']}/")
    page.locator(f"[data-message-id='{ids['heliotrope']}']").wait_for()
    # "/" outside a text field jumps to the search too; Escape brings the list back.
    page.locator("[data-testid=conversation-title]").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.dataset.testid") == "search-input"
    page.keyboard.type('"no such" words')
    page.locator("[data-testid=search-empty]").wait_for()
    page.keyboard.press("Escape")
    page.locator("[data-testid=conversation-list]").wait_for(state="visible")
    assert not page.console_errors
    page.context.close()


def groups(page):
    return page.locator("[data-testid=conversation-group]").all_inner_texts()


def titles(page):
    return page.locator("[data-testid=conversation-list] [data-testid=conversation-link]").all_inner_texts()


def test_folders_pins_date_groups_and_bulk_delete(browser, search_server, screenshot):
    server, ids = search_server
    page = open_chat_page(browser, server, "sam")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=conversation-group]').length >= 4")
    assert [g.lower() for g in groups(page)[:3]] == ["today", "yesterday", "previous 7 days"]
    assert len(groups(page)) == 4  # …and the month of the oldest one
    assert titles(page)[-1] == "Chat old"
    # A folder, and a conversation moved into it.
    page.click("[data-testid=new-folder]")
    page.fill("[data-testid=new-folder-name]", "Hobbies")
    page.keyboard.press("Enter")
    page.locator("[data-testid=folder]", has_text="Hobbies").wait_for()
    item = page.locator(f"[data-conversation-item='{ids['yesterday']}']")
    item.hover()
    item.locator("[data-testid=move]").select_option(label="Hobbies")
    page.locator(f"[data-conversation-item='{ids['yesterday']}'][data-folder='Hobbies']").wait_for()
    page.locator("[data-testid=folder]", has_text="Hobbies").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=conversation-list] [data-conversation-item]').length === 1")
    assert titles(page) == ["Chat yesterday"]
    page.locator("[data-testid=folder]", has_text="All").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=conversation-list] [data-conversation-item]').length === 5")
    # Pin the oldest: it goes to the top under "Pinned".
    old = page.locator(f"[data-conversation-item='{ids['old']}']")
    old.hover()
    old.locator("[data-testid=pin]").click()
    page.wait_for_function("() => document.querySelector('[data-testid=conversation-group]').dataset.group === 'Pinned'")
    assert titles(page)[0] == "Chat old"
    screenshot(page, "sidebar-groups-folder-pin")
    # Select two and delete them with one confirmation.
    page.click("[data-testid=select-mode]")
    page.locator(f"[data-select='{ids['today']}']").check()
    page.locator(f"[data-select='{ids['week']}']").check()
    assert page.locator("[data-testid=bulk-count]").inner_text() == "2 selected"
    page.click("[data-testid=bulk-delete]")
    dialog = page.locator("[data-testid=bulk-confirm]")
    dialog.wait_for()
    assert "Delete 2 conversations? This cannot be undone." in dialog.inner_text()
    page.click("[data-testid=bulk-confirm-yes]")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=conversation-list] [data-conversation-item]').length === 3")
    assert set(titles(page)) == {"Chat old", "Garden plans", "Chat yesterday"}
    left = server.shell(
        "from apps.chat.models import Conversation;"
        "print(sorted(Conversation.objects.filter(owner__username='sam').values_list('title', flat=True)))"
    )
    assert left.strip() == str(sorted(["Chat old", "Garden plans", "Chat yesterday"]))
    assert not page.console_errors
    page.context.close()
