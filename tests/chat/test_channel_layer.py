"""The configured channel layer (project.layers): Channels' semantics at a cost per frame that
does not grow with the number of answers (issue 11). Counted, never timed."""

import asyncio

import pytest
from channels.exceptions import ChannelFull
from channels.layers import ChannelLayerManager
from django.conf import settings

in_memory = pytest.mark.skipif(bool(settings.REDIS_URL), reason="the default profile's layer")


def fresh_layer(**config):
    """A new layer of the configured backend (not the process's shared one)."""
    return ChannelLayerManager()._make_backend(
        "default", {**settings.CHANNEL_LAYERS["default"].get("CONFIG", {}), **config}
    )


async def _many_watched_answers(layer, count):
    """``count`` sockets, each in its own answer group, the way 1,000 live answers look."""
    sockets = []
    for index in range(count):
        channel = await layer.new_channel()
        await layer.group_add(f"answer.{index}", channel)
        await layer.group_add(f"user.{index}", channel)
        sockets.append(channel)
    return sockets


@in_memory
async def test_a_frame_does_not_scan_every_channel_and_group(monkeypatch):
    layer = fresh_layer()
    sockets = await _many_watched_answers(layer, 300)
    scans = []
    original = type(layer)._clean_expired
    monkeypatch.setattr(type(layer), "_clean_expired", lambda self: (scans.append(1), original(self)))
    for round_ in range(5):
        for index in range(300):
            await layer.group_send(f"answer.{index}", {"type": "chat.frame", "frame": {"seq": round_}})
        for channel in sockets:
            assert (await layer.receive(channel))["frame"]["seq"] == round_
    # Channels' layer sweeps all 300 channels and 600 memberships on each of these 3,000 calls.
    assert len(scans) <= 1


@in_memory
async def test_an_expired_message_still_takes_its_channel_out_of_its_groups():
    layer = fresh_layer(expiry=0.05, sweep_interval=0.0)
    gone, alive = await layer.new_channel(), await layer.new_channel()
    for channel in (gone, alive):
        await layer.group_add("answer.1", channel)
        await layer.group_add("user.1", channel)
    await layer.send(gone, {"type": "never.read"})
    await asyncio.sleep(0.1)
    await layer.group_send("answer.1", {"type": "chat.frame", "n": 1})
    assert (await layer.receive(alive))["n"] == 1
    assert list(layer.groups["answer.1"]) == [alive] and list(layer.groups["user.1"]) == [alive]
    assert gone not in layer.channels


@in_memory
async def test_capacity_and_group_discard_hold():
    layer = fresh_layer(capacity=2, channel_capacity={"generation.*": 3})
    control = "generation.worker-1"
    for _ in range(3):
        await layer.send(control, {"type": "generation.stop"})
    with pytest.raises(ChannelFull):
        await layer.send(control, {"type": "generation.stop"})
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "a"})
    await layer.send(channel, {"type": "b"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "c"})
    await layer.group_add("answer.1", channel)
    await layer.group_send("answer.1", {"type": "over.capacity"})  # dropped, not raised
    await layer.group_discard("answer.1", channel)
    assert "answer.1" not in layer.groups
    assert [(await layer.receive(channel))["type"] for _ in range(2)] == ["a", "b"]


async def test_every_receiver_gets_its_own_copy():
    layer = fresh_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("answer.2", first)
    await layer.group_add("answer.2", second)
    sent = {"type": "chat.frame", "frame": {"type": "delta", "text": "é \"q\"", "seq": 1, "parts": [1, 2]}}
    await layer.group_send("answer.2", sent)
    one, two = await layer.receive(first), await layer.receive(second)
    one["frame"]["parts"].append(3)
    one["frame"]["seq"] = 99
    assert two == sent and two["frame"] is not sent["frame"]
    await layer.group_discard("answer.2", first)
    await layer.group_discard("answer.2", second)
    await layer.flush()


async def _control_receivers(layer):
    """How many receives wait on channels: the in-memory layer keeps a queue per control
    channel being read; on Redis each receive holds a connection in a blocking pop."""
    if hasattr(layer, "channels"):
        return sum(1 for name in layer.channels if name.startswith("generation."))
    db = layer.connection(0).connection_pool.connection_kwargs.get("db", 0)
    clients = await layer.connection(0).client_list()
    return sum(1 for c in clients if c.get("cmd") == "bzpopmin" and int(c.get("db", -1)) == db)


@pytest.mark.django_db(transaction=True)
async def test_one_control_listener_per_process_not_one_per_answer(chat_config, user_a, open_socket, settings):
    from channels.layers import get_channel_layer

    from apps.chat.generation import running_generation

    settings.CHAT_IDLE_TIMEOUT = 15  # eight answers at once on a busy machine
    settings.CHAT_ANSWERS_AT_ONCE = 0  # more at once than the per-user default allows
    socket = await open_socket(user_a[1])
    answers = []
    for index in range(8):
        await socket.send({"type": "send", "client_id": f"many-{index}", "model": "gpt-4o",
                           "text": f"Answer {index} [sim:words 200] [sim:delay ttft=20 chunk=25]"})
        answers.append((await socket.created_answer())["id"])
    await socket.until(lambda f: f["type"] == "delta" and f["message_id"] == answers[-1])
    assert sum(1 for answer in answers if running_generation(answer)) >= 6
    # With a listener per answer: 8 (in memory) or 9 blocking pops (Redis, with the sockets' one).
    assert await _control_receivers(get_channel_layer()) <= 3
    for answer in answers:  # an early one may have ended while later ones were being sent
        if not any(f["type"] == "done" and f["message_id"] == answer for f in socket.frames):
            await socket.done(answer)


@pytest.mark.django_db(transaction=True)
async def test_a_stop_through_the_process_control_channel_stops_the_answer(chat_config, user_a, open_socket):
    from apps.chat.generation import send_control
    from apps.chat.workers import WORKER_ID

    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "ctl-1", "model": "gpt-4o",
                       "text": "Long [sim:words 400] [sim:delay ttft=20 chunk=20]"})
    answer = (await socket.created_answer())["id"]
    await socket.until(lambda f: f["type"] == "delta" and f["message_id"] == answer)
    # As another process would: through the channel layer to this process's control channel.
    await send_control(message_id=answer, worker=WORKER_ID, event={"type": "generation.stop"})
    done = await socket.done(answer)
    assert done["status"] == "stopped"
    assert len(socket.text_of(answer).split()) < 400


@pytest.mark.skipif(not settings.REDIS_URL, reason="the PostgreSQL + Redis profile's layer")
async def test_a_burst_for_many_sockets_of_one_process_loses_no_frame():
    # channels_redis applies its capacity (1,000) to the one key all sockets of a process share:
    # of these 3,000 frames it drops 2,000.
    layer = fresh_layer()
    sockets = await _many_watched_answers(layer, 30)
    try:
        for seq in range(1, 101):
            for index in range(30):
                await layer.group_send(f"answer.{index}", {"type": "chat.frame", "seq": seq})
        for channel in sockets:
            seqs = [(await asyncio.wait_for(layer.receive(channel), 5))["seq"] for _ in range(100)]
            assert seqs == list(range(1, 101))
    finally:
        await layer.flush()


@pytest.mark.django_db(transaction=True)
async def test_a_relayed_frame_costs_no_trip_to_the_database_thread(chat_config, user_a, open_socket, monkeypatch):
    import channels.consumer

    hops = []
    original = channels.consumer.aclose_old_connections

    async def counted():
        hops.append(1)
        return await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "hops-1", "model": "gpt-4o",
                       "text": "Hello [sim:words 60] [sim:delay ttft=10 chunk=45]"})
    answer = (await socket.created_answer())["id"]
    await socket.done(answer)
    frames = sum(1 for f in socket.frames if f["type"] == "delta")
    assert frames >= 10
    # Channels' dispatch: one hop per frame the socket relays (15 or more here); the send frame's only.
    assert len(hops) <= 3
