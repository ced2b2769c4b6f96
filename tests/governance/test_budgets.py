"""Spending budgets: refused before anything starts, with what was used of what and when it
resets; an answer already running when the budget runs out finishes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.azure.pricing import format_cost
from apps.chat.exchange import ExchangeRefused, send_message
from apps.chat.models import Message, Purpose, UsageRecord
from apps.governance.models import Budget
from tests.chat.conftest import ado
from tests.governance.test_rate_limits import finished, replies, send_frame


@pytest.mark.django_db(transaction=True)
async def test_a_budget_refuses_the_next_request_and_lets_the_running_answer_finish(
    chat_config, user_a, open_socket, azure_simulator
):
    alice = user_a[0]
    await Budget.objects.acreate(user=alice, period=Budget.Period.DAY, tokens=30)
    socket = await open_socket(user_a[1])
    # A long answer starts (nothing spent yet) and is still being written...
    await socket.send(send_frame("long", text="long one [sim:words 300] [sim:delay chunk=15]"))
    (long_answer,), () = await replies(socket, 1, prefix="c-long")
    # ... while a short one, in another conversation, spends more than the budget.
    await socket.send(send_frame("short", text="short one [sim:words 60]"))
    (short_answer,), () = await replies(socket, 1, prefix="c-short")
    assert (await finished(socket, short_answer))["status"] == "complete"
    requests_before = len(azure_simulator.requests())

    await socket.send(send_frame("refused", text="over budget now"))
    (), (refusal,) = await replies(socket, 1, prefix="c-refused")
    assert refusal["code"] == "over_budget"
    assert "of 30 tokens allowed today" in refusal["message"]
    assert "resets on " in refusal["message"] and " at 00:00 UTC" in refusal["message"]
    # Regenerate is a path to the model too.
    await socket.send({"type": "regenerate", "message_id": short_answer, "client_id": "regen"})
    frame = await socket.until(lambda f: f["type"] == "error")
    assert frame["code"] == "over_budget"

    # The running answer was not cut: it ends complete, with all its text.
    done = await finished(socket, long_answer)
    assert done["status"] == "complete", done
    stored = await Message.objects.aget(id=long_answer)
    assert len(stored.content.split()) >= 300
    # Nothing was stored or sent for the refused requests.
    assert len(azure_simulator.requests()) == requests_before
    assert not await Message.objects.filter(content="over budget now").aexists()


def spend(user, tokens, *, days_ago=0):
    record = UsageRecord.objects.create(
        user=user, purpose=Purpose.CHAT, model_key="gpt-4o", prompt_tokens=tokens, completion_tokens=0
    )
    if days_ago:
        UsageRecord.objects.filter(pk=record.pk).update(created=timezone.now() - timedelta(days=days_ago))


def refusal(user):
    with pytest.raises(ExchangeRefused) as refused:
        send_message(user=user, client_id=f"x-{user.pk}", text="hi", model_key="gpt-4o")
    assert refused.value.code == "over_budget"
    return refused.value.message


@pytest.mark.django_db
def test_default_and_group_budgets_count_what_they_say(chat_config):
    users = get_user_model().objects
    alice, bob, carol = (users.create_user(name) for name in ("alice", "bob", "carol"))
    Budget.objects.create(period=Budget.Period.MONTH, tokens=100)  # each user, on their own
    spend(bob, 150)
    assert refusal(bob).startswith("You have used 150 of 100 tokens allowed this month.")
    spend(alice, 90)
    spend(alice, 500, days_ago=40)  # an earlier month does not count
    send_message(user=alice, client_id="ok", text="still fine", model_key="gpt-4o")

    team = Group.objects.create(name="team")  # the members' spending together
    alice.groups.add(team)
    carol.groups.add(team)
    Budget.objects.create(group=team, period=Budget.Period.DAY, tokens=200)
    spend(carol, 95)
    spend(carol, 1000, days_ago=2)  # an earlier day does not count
    send_message(user=carol, client_id="ok2", text="fine", model_key="gpt-4o")  # 185 of 200
    spend(carol, 20)
    assert refusal(alice).startswith("The group team has used 205 of 200 tokens allowed today.")
    assert Message.objects.filter(client_id__startswith="x-").count() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_title_is_not_asked_for_once_the_owner_is_over_budget(
    azure_simulator, activate_config, user_a
):
    from asgiref.sync import sync_to_async

    from apps.chat.models import BackgroundCallFailure, Conversation
    from apps.chat.titles import fallback_title, generate_title

    await sync_to_async(activate_config)(azure_simulator.config_yaml(titleConvo=True, summarize=False))
    azure_simulator.reset()
    alice = user_a[0]
    conversation = await Conversation.objects.acreate(owner=alice, model_key="gpt-4o")
    await Budget.objects.acreate(user=alice, period=Budget.Period.DAY, tokens=10)
    await UsageRecord.objects.acreate(user=alice, purpose=Purpose.CHAT, model_key="gpt-4o", prompt_tokens=11)
    text = "Plan the offsite for the platform team in spring"
    title = await generate_title(conversation_id=conversation.id, user_id=alice.pk, text=text)
    assert title == fallback_title(text)
    assert azure_simulator.requests() == []  # the title model was never called
    failure = await BackgroundCallFailure.objects.aget()
    assert failure.error_code == "over_budget" and "11 of 10 tokens" in failure.admin_detail


def test_the_admin_lists_and_adds_limits_and_budgets(admin_client):
    for path in ("/admin/governance/ratelimit/", "/admin/governance/budget/", "/admin/governance/budget/add/"):
        assert admin_client.get(path).status_code == 200, path
    response = admin_client.post(
        "/admin/governance/budget/add/",
        {"period": "day", "unit": "tokens", "tokens": "5000", "currency": "USD", "user": "", "group": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert str(Budget.objects.get()) == "5,000 tokens per day for everyone (each user)"


def test_negative_limits_and_a_short_slot_ttl_are_system_check_errors(settings):
    from apps.governance.checks import check_limits

    settings.CHAT_ANSWERS_AT_ONCE, settings.RATE_LIMIT_SLOT_TTL = -1, 1
    problems = check_limits()
    assert [p.id for p in problems] == ["lapis.E601", "lapis.E602"]
    assert "CHAT_ANSWERS_AT_ONCE=-1 is negative" in problems[0].msg


@pytest.mark.django_db(transaction=True)
async def test_a_currency_budget_refuses_the_next_request_and_lets_the_running_answer_finish(
    azure_simulator, activate_config, user_a, open_socket
):
    # A dear price, so that a few dozen tokens cross a budget of cents.
    models = {"gpt-4o": {"deploymentName": "gpt-4o", "pricing": {"input": 500, "output": 500}},
              "small-window": {"deploymentName": "small-window", "contextWindow": 1200}}
    await ado(activate_config, azure_simulator.config_yaml(titleConvo=False, summarize=False, chat_models=models))
    azure_simulator.reset()
    alice = user_a[0]
    await Budget.objects.acreate(
        user=alice, period=Budget.Period.MONTH, unit=Budget.Unit.CURRENCY, amount=Decimal("0.05")
    )
    # Spending in another currency or on a model without a price does not count against it.
    await UsageRecord.objects.acreate(user=alice, purpose=Purpose.CHAT, model_key="x", prompt_tokens=10**6,
                                      cost=Decimal(1000), currency="EUR")
    socket = await open_socket(user_a[1])
    await socket.send(send_frame("long", text="long one [sim:words 300] [sim:delay chunk=15]"))
    (long_answer,), () = await replies(socket, 1, prefix="c-long")
    await socket.send(send_frame("short", text="short one [sim:words 100]"))
    (short_answer,), () = await replies(socket, 1, prefix="c-short")
    short = await finished(socket, short_answer)
    assert Decimal(short["usage"]["cost"]) >= Decimal("0.05")  # the budget is crossed now
    requests_before = len(azure_simulator.requests())

    await socket.send(send_frame("refused", text="over budget now"))
    (), (refusal,) = await replies(socket, 1, prefix="c-refused")
    assert refusal["code"] == "over_budget"
    spent = await ado(lambda: sum(r.cost for r in UsageRecord.objects.filter(user=alice, currency="USD")))
    assert f"You have used {format_cost(spent, 'USD')} of $0.05 allowed this month" in refusal["message"]
    assert "resets on " in refusal["message"] and "-01 at 00:00 UTC" in refusal["message"]

    done = await finished(socket, long_answer)
    assert done["status"] == "complete" and Decimal(done["usage"]["cost"]) > 0
    assert len(azure_simulator.requests()) == requests_before
    assert not await Message.objects.filter(content="over budget now").aexists()


def test_a_budget_in_a_currency_needs_an_amount_and_a_currency_code(admin_client):
    response = admin_client.post(
        "/admin/governance/budget/add/",
        {"period": "month", "unit": "currency", "tokens": "", "amount": "", "currency": "usd",
         "user": "", "group": ""},
    )
    page = response.content.decode()
    assert response.status_code == 200 and "A currency budget needs the amount." in page
    response = admin_client.post(
        "/admin/governance/budget/add/",
        {"period": "month", "unit": "currency", "tokens": "", "amount": "25", "currency": "EUR",
         "user": "", "group": ""},
    )
    assert response.status_code == 302
    assert str(Budget.objects.get()) == "25.00 EUR per month for everyone (each user)"
