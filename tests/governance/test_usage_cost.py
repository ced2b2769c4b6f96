"""Usage per message: Azure's tokens (or Lapis's count, marked estimated) and the cost at the
model's price, in the live ``done`` frame, the stored message and the conversation's total; a
model without a price shows tokens only; prices come from the YAML or the built-in table."""

from decimal import Decimal

import pytest

from apps.azure.config import parse_config
from apps.azure.pricing import BUILTIN_PRICES, Price, builtin_price, format_cost
from apps.chat.models import Message, UsageRecord
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)

GPT_4O = BUILTIN_PRICES["gpt-4o"]


def expected_cost(price, prompt, completion):
    return ((prompt * price.input + completion * price.output) / Decimal(10**6)).quantize(Decimal("1e-10"))


async def ask(socket, text, model, client_id, conversation_id=None):
    await socket.send({"type": "send", "conversation_id": conversation_id, "client_id": client_id,
                       "model": model, "text": text})
    answer = await socket.created_answer()
    return answer, await socket.done(answer["id"])


async def test_a_priced_answer_shows_tokens_and_cost_live_and_after_reload(
    chat_config, user_a, user_b, open_socket, azure_simulator
):
    socket = await open_socket(user_a[1])
    answer, done = await ask(socket, "Price me [sim:words 40]", "gpt-4o", "p1")
    usage = done["usage"]
    assert usage["estimated"] is False and usage["prompt_tokens"] > 0 and usage["completion_tokens"] >= 40
    # Azure's own numbers: the simulator's usage chunk, not a count of Lapis's.
    request = azure_simulator.requests(deployment="gpt-4o")[-1]
    assert request["json"]["stream_options"] == {"include_usage": True}
    cost = expected_cost(GPT_4O, usage["prompt_tokens"], usage["completion_tokens"])
    assert Decimal(usage["cost"]) == cost and usage["currency"] == "USD"
    assert usage["cost_display"] == format_cost(cost, "USD") and usage["cost_display"].startswith("$0.0")

    stored = await Message.objects.aget(id=answer["id"])
    assert stored.cost == cost and stored.currency == "USD" and not stored.usage_estimated
    record = await UsageRecord.objects.aget(conversation_id=answer["conversation_id"], purpose="chat")
    assert record.cost == cost and record.prompt_tokens == usage["prompt_tokens"]

    cid = answer["conversation_id"]
    page = await ado(user_a[1].get, f"/api/chat/conversations/{cid}/")
    shown = next(m for m in page.json()["messages"] if m["id"] == answer["id"])
    assert shown["usage"] == usage  # a reload shows what the live frame showed
    total = (await ado(user_a[1].get, f"/api/chat/conversations/{cid}/usage")).json()
    assert total["prompt_tokens"] == usage["prompt_tokens"] and total["calls"] == 1
    assert total["costs"] == [{"currency": "USD", "cost": usage["cost"], "cost_display": usage["cost_display"]}]
    # Another user's conversation is a 404, like one that does not exist.
    assert (await ado(user_b[1].get, f"/api/chat/conversations/{cid}/usage")).status_code == 404


async def test_an_unpriced_model_shows_tokens_only(chat_config, user_a, open_socket):
    assert builtin_price("small-window") is None
    socket = await open_socket(user_a[1])
    answer, done = await ask(socket, "No price [sim:words 20]", "small-window", "u1")
    usage = done["usage"]
    assert usage["completion_tokens"] >= 20
    assert "cost" not in usage and "cost_display" not in usage and "currency" not in usage
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.cost is None and stored.currency == ""
    record = await UsageRecord.objects.aget(conversation_id=answer["conversation_id"])
    assert record.cost is None
    total = (await ado(user_a[1].get, f"/api/chat/conversations/{answer['conversation_id']}/usage")).json()
    assert total["costs"] == [] and total["unpriced_calls"] == 1


async def test_without_azures_usage_the_tokens_are_counted_and_marked_estimated(
    chat_config, user_a, open_socket
):
    socket = await open_socket(user_a[1])
    # The connection drops after a few chunks: no usage chunk ever comes.
    answer, done = await ask(socket, "Cut me [sim:words 200] [sim:drop after=5]", "gpt-4o", "e1")
    usage = done["usage"]
    assert usage["estimated"] is True and usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert Decimal(usage["cost"]) == expected_cost(GPT_4O, usage["prompt_tokens"], usage["completion_tokens"])
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.usage_estimated and stored.completion_tokens == usage["completion_tokens"]


async def test_yaml_pricing_wins_and_a_later_price_change_rewrites_no_history(
    azure_simulator, activate_config, user_a, open_socket
):
    models = {
        "gpt-4o": {"deploymentName": "gpt-4o",
                   "pricing": {"input": 100, "output": "200.5", "currency": "EUR"}},
        "small-window": {"deploymentName": "small-window", "contextWindow": 1200},
    }
    registry = await ado(activate_config, azure_simulator.config_yaml(titleConvo=False, summarize=False, chat_models=models))
    price = registry.get("gpt-4o").pricing
    assert price == Price(Decimal(100), Decimal("200.5"), None, "EUR", "config")
    socket = await open_socket(user_a[1])
    answer, done = await ask(socket, "Euro [sim:words 10]", "gpt-4o", "y1")
    usage = done["usage"]
    first = expected_cost(price, usage["prompt_tokens"], usage["completion_tokens"])
    assert Decimal(usage["cost"]) == first and usage["currency"] == "EUR"
    assert usage["cost_display"].endswith(" EUR")

    models["gpt-4o"]["pricing"] = {"input": 1, "output": 1, "currency": "EUR"}
    await ado(activate_config, azure_simulator.config_yaml(titleConvo=False, summarize=False, chat_models=models))
    record = await UsageRecord.objects.aget(conversation_id=answer["conversation_id"])
    stored = await Message.objects.aget(id=answer["id"])
    assert record.cost == first == stored.cost  # written at the price of its time


def test_bad_pricing_entries_are_reported_with_their_lines(monkeypatch):
    text = """endpoints:
  azureOpenAI:
    groups:
      - group: g
        apiKey: k
        instanceName: res
        version: "2024-10-21"
        models:
          gpt-4o:
            deploymentName: d
            pricing:
              input: -1
              output: cheap
              cachedInput: ${LAPIS_PRICE}
              currency: euro
              discount: 3
          gpt-4o-mini:
            deploymentName: m
            pricing: {input: 1}
"""
    result = parse_config(text, environ={})
    problems = {(p.path, p.line): p.message for p in result.errors}
    base = "endpoints.azureOpenAI.groups[0].models.gpt-4o.pricing"
    assert "from 0 to 1000000" in problems[(f"{base}.input", 12)]
    assert "from 0 to 1000000" in problems[(f"{base}.output", 13)]
    assert "not expanded" in problems[(f"{base}.cachedInput", 14)]
    assert "ISO 4217" in problems[(f"{base}.currency", 15)]
    assert "unknown key" in problems[(f"{base}.discount", 16)]
    assert "pricing needs output" in problems[("endpoints.azureOpenAI.groups[0].models.gpt-4o-mini.pricing", 19)]
    assert result.config is None


def test_the_built_in_table_matches_names_exactly_and_bills_cached_input():
    assert builtin_price("gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]
    assert builtin_price("GPT-4o-2024-11-20") == GPT_4O  # a version date is the same model
    assert builtin_price("team-chat", "gpt-4.1-nano") == BUILTIN_PRICES["gpt-4.1-nano"]  # by deployment
    assert builtin_price("my-gpt-4o-finetune") is None  # no guessing from a part of a name
    cost = GPT_4O.cost(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=400_000)
    assert cost == Decimal("0.6") * GPT_4O.input + Decimal("0.4") * GPT_4O.cached_input + GPT_4O.output
    assert format_cost(Decimal("0.0001234"), "USD") == "$0.0001234"
    assert format_cost(Decimal("12.5"), "EUR") == "12.50 EUR"
