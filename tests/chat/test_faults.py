"""Each upstream fault of the simulator ends as a clear status and message on the answer."""

import pytest

from apps.chat.models import Message
from tests.chat.conftest import ado, make_user_and_client

pytestmark = pytest.mark.django_db(transaction=True)


async def ask(open_socket, client, text, model="gpt-4o"):
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "x", "text": text, "model": model})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"], timeout=40)
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.status == done["status"]
    return done, stored, socket


@pytest.mark.parametrize(
    ("marker", "status", "code", "words"),
    [
        ("[sim:429 retry_after=1]", "error", "rate_limited", "Try again in 1 second."),
        ("[sim:filter_prompt category=violence severity=high]", "filtered", "content_filter_prompt", "violence"),
        ("[sim:filter_answer after=3]", "filtered", "content_filter_answer", "content filter"),
        ("[sim:stall after=3]", "error", "upstream_stalled", "stopped answering"),
        ("[sim:drop after=3]", "interrupted", "upstream_broken", "connection to Azure broke"),
        ("[sim:cut after=3]", "interrupted", "upstream_broken", "connection to Azure broke"),
        ("[sim:error_event after=3]", "error", "upstream_error", "failed while answering"),
        ("[sim:malformed after=3]", "error", "upstream_protocol", "could not read"),
        ("[sim:500]", "error", "upstream_error", "server error"),
    ],
)
async def test_fault_maps_to_status_and_message(chat_config, user_a, open_socket, marker, status, code, words):
    done, stored, socket = await ask(open_socket, user_a[1], f"Please answer {marker} [sim:words 100]")
    assert done["status"] == status, done
    assert stored.error_code and stored.error_message
    if code:
        assert stored.error_code == code
        assert done["error"]["code"] == code
    if words:
        assert words in stored.error_message, stored.error_message
    assert "detail" not in done["error"], "the admin detail is for staff only"
    assert "sim-key" not in stored.error_message and "sim-key" not in stored.error_detail
    if "after=3" in marker and "filter_prompt" not in marker:
        # text written before the fault is kept and matches what the socket showed
        assert stored.content and stored.content == socket.text_of(str(stored.id))
        assert "text written before this is kept" in stored.error_message
    if code == "rate_limited":
        assert done["error"]["retry_after"] == 1
    if code == "content_filter_prompt":
        assert "high" in stored.error_message


async def test_short_rate_limit_waits_are_retried_long_ones_reported_at_once(
    chat_config, user_a, open_socket, azure_simulator
):
    azure_simulator.reset()
    done, stored, _ = await ask(open_socket, user_a[1], "Soon [sim:429 retry_after=1 times=1]")
    assert done["status"] == "complete"
    assert len(azure_simulator.requests(deployment="gpt-4o")) == 2  # the 429, then the retry

    azure_simulator.reset()
    _, client = await ado(make_user_and_client, "carol")
    done, stored, _ = await ask(open_socket, client, "Later [sim:429 retry_after=45]")
    assert done["status"] == "error" and done["error"]["retry_after"] == 45
    assert "Try again in 45 seconds." in stored.error_message
    assert len(azure_simulator.requests(deployment="gpt-4o")) == 1  # no silent 45 s waits

    # Azure's retry-after-ms (58,361) becomes a wait people read, not "58.361 seconds".
    azure_simulator.reset()
    _, client = await ado(make_user_and_client, "dave")
    done, stored, _ = await ask(open_socket, client, "Much later [sim:429 retry_after=58.361]")
    assert done["error"]["retry_after"] == 58.361
    assert done["error"]["message"] == stored.error_message
    assert "Try again in 58 seconds." in stored.error_message and "58.361" not in stored.error_message


async def test_context_too_long_is_reported(chat_config, user_a, open_socket):
    done, stored, _ = await ask(open_socket, user_a[1], "word " * 1500, model="small-window")
    assert done["status"] == "error" and stored.error_code == "context_length_exceeded"
    assert "small-window" in stored.error_message and "tokens" in stored.error_message


async def test_missing_deployment_names_group_and_deployment_for_staff_only(
    azure_simulator, activate_config, settings, open_socket
):
    chat_models = {
        "gpt-4o-mini": {"deploymentName": "gpt-4o-mini"},
        "ghost": {"deploymentName": "no-such-deployment"},
    }
    await ado(activate_config, azure_simulator.config_yaml(chat_models=chat_models))
    staff = await ado(make_user_and_client, "root", staff=True)
    plain = await ado(make_user_and_client, "pat")
    done, stored, _ = await ask(open_socket, staff[1], "hi", model="ghost")
    assert stored.error_code == "deployment_not_found"
    assert "simulator" in done["error"]["detail"] and "no-such-deployment" in done["error"]["detail"]
    done, stored, _ = await ask(open_socket, plain[1], "hi", model="ghost")
    assert "detail" not in done["error"] and "no-such-deployment" not in stored.error_message
    response = await ado(plain[1].get, f"/api/chat/conversations/{stored.conversation_id}/")
    assert "no-such-deployment" not in response.content.decode()


async def test_wrong_key_is_auth_failed(azure_simulator, activate_config, open_socket, monkeypatch):
    monkeypatch.setenv("LAPIS_SIM_KEY", "not-the-key")
    await ado(activate_config, azure_simulator.config_yaml())
    done, stored, _ = await ask(open_socket, (await ado(make_user_and_client, "kim"))[1], "hi")
    assert stored.error_code == "auth_failed" and "authenticate" in stored.error_message
    assert "not-the-key" not in stored.error_message + stored.error_detail
