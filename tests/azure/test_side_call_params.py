"""Titles and summaries keep their own cap and format whatever the group's addParams say
(real SDK calls to the simulator, which refuses ``json_object`` as Azure does)."""

import dataclasses

import pytest
import yaml

from apps.azure.client import aclose_clients, complete_chat, merge_params
from apps.azure.config import parse_config
from apps.azure.errors import UpstreamError
from apps.azure.registry import Registry

ADD = {"max_tokens": 2048, "response_format": {"type": "json_object"}, "tools": [], "seed": 7}
TEXT = [{"role": "user", "content": "Summarise our chat about Lisbon"}]


@pytest.fixture(autouse=True)
async def _clean():
    yield
    await aclose_clients()


def spec_with(azure_simulator, add_params, key="gpt-4o-mini", drop=None):
    config = yaml.safe_load(azure_simulator.config_yaml())
    group = config["endpoints"]["azureOpenAI"]["groups"][0]
    group["addParams"] = add_params
    if drop:
        group["dropParams"] = drop
    result = parse_config(yaml.safe_dump(config), environ={"LAPIS_SIM_KEY": azure_simulator.api_key, "CONFIG_ALLOWED_ENDPOINT_HOSTS": "127.0.0.1"})
    assert result.errors == []
    return Registry(result.config).get(key)


@pytest.mark.parametrize("purpose", ["title", "summary"])
async def test_side_calls_keep_their_cap_and_no_response_format_on_the_wire(azure_simulator, purpose):
    spec = spec_with(azure_simulator, ADD)
    azure_simulator.reset()
    completion = await complete_chat(spec, TEXT, params={"max_tokens": 300}, purpose=purpose)
    assert completion.text
    [request] = azure_simulator.requests(deployment="gpt-4o-mini")
    assert request["status"] == 200
    assert request["json"]["max_tokens"] == 300
    assert "response_format" not in request["json"] and "tools" not in request["json"]
    assert request["json"]["seed"] == 7


async def test_an_answer_gets_the_add_params_and_azure_refuses_json_mode_without_json(azure_simulator):
    """The same call as an answer: addParams win (config.md's order), and the simulator answers
    Azure's 400, which is what a title or summary would have got before."""
    spec = spec_with(azure_simulator, ADD)
    azure_simulator.reset()
    with pytest.raises(UpstreamError) as caught:
        await complete_chat(spec, TEXT, params={"max_tokens": 300})
    assert caught.value.code == "bad_request" and "json" in caught.value.message.lower()
    [request] = azure_simulator.requests(deployment="gpt-4o-mini")
    assert request["json"]["max_tokens"] == 2048 and request["status"] == 400


def test_reasoning_side_calls_keep_their_cap_and_drop_params_still_apply(azure_simulator):
    spec = spec_with(azure_simulator, {"max_completion_tokens": 4096, "temperature": 0.3}, drop=["seed"])
    reasoning = dataclasses.replace(spec, key="o3-mini", reasoning=True)
    body = merge_params(reasoning, {"max_tokens": 1024, "seed": 1}, purpose="title")
    assert body == {"max_completion_tokens": 1024}
    assert merge_params(reasoning, {"max_tokens": 1024})["max_completion_tokens"] == 4096
    with pytest.raises(ValueError):
        merge_params(spec, {}, purpose="titles")
