"""Usage and cost in a real Chromium: on each answer and as the conversation's total, live and
after a reload; tokens only for a model without a price; the admin dashboard's chart of seeded
usage."""

import re

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

SEED = """
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.chat.models import UsageRecord
users = [get_user_model().objects.create_user(f"seed{n}") for n in range(3)]
for day in range(5):
    for n, user in enumerate(users):
        row = UsageRecord.objects.create(user=user, purpose="chat", model_key="gpt-4o-mini",
            deployment="gpt-4o-mini", prompt_tokens=1000 * (n + 1), completion_tokens=500,
            cost=Decimal("0.0045"), currency="USD")
        UsageRecord.objects.filter(pk=row.pk).update(created=timezone.now() - timedelta(days=day))
"""


@pytest.fixture(scope="module")
def usage_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="ann", titleConvo=False, summarize=False
    )
    server.create_user("boss", TEST_PASSWORD, staff=True)
    yield server
    server.stop()


def finished_answer(page):
    answer = page.locator("[data-testid=message][data-role=assistant]").last
    page.wait_for_function(
        "el => el.dataset.status && el.dataset.status !== 'streaming'", arg=answer.element_handle()
    )
    return answer


def send(page, text):
    page.fill("[data-testid=composer-input]", text)
    page.keyboard.press("Enter")


def test_each_answer_shows_its_tokens_and_cost_and_the_conversation_its_total(
    browser, usage_server, screenshot
):
    page = open_chat_page(browser, usage_server, "ann")
    page.select_option("[data-testid=model-picker]", "gpt-4o")
    send(page, "What does this cost? [sim:words 40]")
    answer = finished_answer(page)
    usage = answer.locator("[data-testid=message-usage]")
    usage.wait_for(state="visible")
    shown = usage.inner_text()
    assert re.fullmatch(r"[\d,]+ in · [\d,]+ out · \$0\.\d+", shown), shown
    total = page.locator("[data-testid=conversation-usage]")
    total.wait_for(state="visible")
    first_total = total.inner_text()
    assert re.fullmatch(r"[\d,]+ tokens · \$0\.\d+", first_total), first_total

    # A model without a price: tokens only, and the total's cost stays that of the priced answer.
    page.select_option("[data-testid=model-picker]", "small-window")
    page.wait_for_timeout(300)  # the settings change is saved before the next send
    send(page, "And this one? [sim:words 10]")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=message][data-role=assistant]').length === 2")
    second = finished_answer(page).locator("[data-testid=message-usage]")
    second.wait_for(state="visible")
    assert re.fullmatch(r"[\d,]+ in · [\d,]+ out", second.inner_text()), second.inner_text()
    page.wait_for_function(
        "([el, before]) => el.textContent !== before", arg=[total.element_handle(), first_total]
    )
    assert total.inner_text().endswith(first_total.split(" · ")[1])  # the same cost: tokens only
    screenshot(page, "usage-per-answer")

    page.reload()
    page.wait_for_selector("[data-chat][data-ready='1']")
    again = page.locator("[data-role=assistant] [data-testid=message-usage]").first
    again.wait_for(state="visible")
    assert again.inner_text() == shown
    page.locator("[data-testid=conversation-usage]").wait_for(state="visible")
    assert not page.console_errors, page.console_errors
    page.context.close()


def test_the_dashboard_shows_seeded_usage_with_a_chart(browser, usage_server, screenshot):
    usage_server.shell(SEED)
    page = open_chat_page(browser, usage_server, "boss")
    page.goto(usage_server.url + "/admin/governance/usagereport/")
    page.wait_for_selector("[data-testid=usage-chart]")
    assert page.locator("[data-testid=usage-bar]").count() >= 5  # five days of seeded usage
    assert page.locator("[data-testid=usage-chart]").bounding_box()["height"] > 100
    totals = page.inner_text("[data-testid=usage-totals]")
    assert "tokens" in totals and "$" in page.inner_text("[data-testid=total-cost]")
    top = page.inner_text("[data-testid=usage-top-users]")
    assert top.index("seed2") < top.index("seed1") < top.index("seed0")  # most tokens first
    page.select_option("select[name=by]", "user")
    page.click("button:has-text('Show')")
    page.wait_for_selector("[data-testid=usage-legend] >> text=seed1")
    screenshot(page, "usage-dashboard")
    assert not page.console_errors, page.console_errors
    page.context.close()
