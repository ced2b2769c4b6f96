"""Channel layers whose cost per frame does not grow with the number of answers (issue 11).

Both keep Channels' API and semantics; ``RedisChannelLayer`` (the PostgreSQL + Redis profile)
is described on the class.

``InMemoryChannelLayer`` (the default profile) is Channels' own layer with the same API and
semantics (capacity, message expiry, group expiry, a channel whose message expired leaves its
groups), but:

- Channels' layer scans every channel and every group membership on each ``receive`` and each
  ``group_send`` to expire old messages, so a frame costs O(answers) and N answers cost O(N²).
  Here that sweep runs at most once per ``sweep_interval`` (the expiries are tens of seconds:
  a message or membership may outlive its expiry by that much), and a channel's groups are
  indexed so that removing it from them does not scan every group.
- ``group_send`` puts the message into each member's queue directly instead of one task per
  member, and ``send`` does not build a throw-away queue on every call.
- Messages are copied for each receiver (as Channels does, so a receiver that changes one cannot
  change another's) with a copy of the JSON-shaped values frames are made of, cheaper than
  ``deepcopy``; anything else still goes through ``deepcopy``.
- ``channel_capacity`` (per-channel capacities by glob) works: Channels' layer accepts it but
  fails on the first message.
"""

import asyncio
import logging
import time
from copy import deepcopy

import channels_redis.core
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer
from channels_redis.core import BoundedQueue
from redis import asyncio as aioredis

from apps.observability import metrics

logger = logging.getLogger("lapis.layers")

_ATOMS = (str, int, float, bool, type(None), bytes)


def copy_message(value):
    """A copy of ``value`` that shares nothing mutable with it."""
    kind = type(value)
    if kind is dict:
        return {key: copy_message(item) for key, item in value.items()}
    if kind is list:
        return [copy_message(item) for item in value]
    if kind in _ATOMS:
        return value
    return deepcopy(value)


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    """Channels' in-memory layer at O(members of the group) per frame. See the module."""

    def __init__(self, *, sweep_interval=1.0, **kwargs):
        super().__init__(**kwargs)
        # Channels' in-memory layer keeps the dict and then fails to read it as (regex, capacity).
        self.channel_capacity = self.compile_capacities(self.channel_capacity)
        self.sweep_interval = sweep_interval
        self._swept = time.monotonic()
        self._memberships = {}  # channel → set of its groups

    # ------------------------------------------------------------------ channels

    def _queue(self, channel):
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _put(self, channel, message):
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, copy_message(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, message)

    send = metrics.counts_send_failures(send, layer="memory")

    async def receive(self, channel):
        self.require_valid_channel_name(channel)
        self._maybe_sweep()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            # As Channels does: an empty queue goes (a channel nobody reads holds no memory);
            # only if it is still this channel's queue (a flush may have replaced it).
            if queue.empty() and self.channels.get(channel) is queue:
                del self.channels[channel]
        return message

    async def flush(self):
        await super().flush()
        self._memberships = {}

    # ------------------------------------------------------------------ expiry

    def _maybe_sweep(self):
        now = time.monotonic()
        if now - self._swept >= self.sweep_interval:
            self._swept = now
            self._clean_expired()

    def _remove_from_groups(self, channel):
        for group in self._memberships.pop(channel, ()):
            members = self.groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self.groups[group]

    def _clean_expired(self):
        now = time.time()
        for channel, queue in list(self.channels.items()):
            expired = False
            while not queue.empty() and queue._queue[0][0] < now:
                queue.get_nowait()
                expired = True
            if expired:
                self._remove_from_groups(channel)
                if queue.empty():
                    self.channels.pop(channel, None)
        joined_before = int(now) - self.group_expiry
        for group, members in list(self.groups.items()):
            for channel, joined in list(members.items()):
                if joined and joined < joined_before:
                    self._forget(group, channel)

    # ------------------------------------------------------------------ groups

    def _forget(self, group, channel):
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]
        joined = self._memberships.get(channel)
        if joined is not None:
            joined.discard(group)
            if not joined:
                del self._memberships[channel]

    async def group_add(self, group, channel):
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = time.time()
        self._memberships.setdefault(channel, set()).add(group)

    async def group_discard(self, group, channel):
        self.require_valid_channel_name(channel)
        self.require_valid_group_name(group)
        self._forget(group, channel)

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._maybe_sweep()
        for channel in list(self.groups.get(group, ())):
            try:
                self._put(channel, message)
            except ChannelFull:  # as Channels does: a full member misses this one
                metrics.channel_send_failed(layer="memory", reason="full")


class RedisChannelLayer(channels_redis.core.RedisChannelLayer):
    """channels_redis, with the process-local channels (every socket's) read in batches.

    channels_redis keeps all the process-local channels of a process in ONE Redis key, reads it
    one message per blocking pop (with a backup queue: four round trips a message) under a lock
    every socket's ``receive`` contends for, and applies ``capacity`` to that one key: under
    load its single reader falls behind, the key fills, and ``group_send`` drops frames (logged
    at INFO). Here:

    - one reader task per event loop (and ``new_channel`` prefix) pops up to ``local_batch`` messages per round trip
      (``ZPOPMIN`` with a count; a blocking pop only when the key is empty) and hands them to
      per-channel buffers of ``capacity`` messages each, so a socket's ``receive`` is one queue
      read. It runs while some socket waits (ending within ``brpop_timeout`` of the last), so no
      task outlives the sockets; cancelling a socket's ``receive`` never interrupts a pop. A
      message popped as the process dies is lost, as a frame in flight is: the database is the
      truth (resume).
    - the process's key holds ``process_capacity`` messages (all its sockets together); each
      socket's buffer still holds ``capacity``.
    - the connection pool makes a command wait for a free connection rather than fail;
    - ``group_send`` costs two round trips instead of four (one pipeline for the members, one
      script that expires, checks capacity and adds).
    Buffers of channels nobody has read for ``expiry`` seconds (a closed socket) are dropped.
    """

    brpop_timeout = 1

    def __init__(self, *, process_capacity=100_000, local_batch=500, **kwargs):
        super().__init__(**kwargs)
        self.process_capacity = process_capacity
        self.local_batch = local_batch
        self._readers = {}  # (event loop, the channels' common part) → _LocalReader

    def create_pool(self, index):
        """A pool that makes a command wait for a free connection instead of raising
        MaxConnectionsError when every one is in use (1,000 answers publish at once)."""
        host = dict(self.hosts[index])
        if "address" not in host:
            return super().create_pool(index)
        address = host.pop("address")
        host.setdefault("max_connections", 100)
        host.setdefault("timeout", 20)
        return aioredis.BlockingConnectionPool.from_url(address, **host)

    def get_capacity(self, channel):
        if "!" in channel:  # the key of the whole process; each socket's buffer holds capacity
            return self.process_capacity
        return super().get_capacity(channel)

    async def receive(self, channel):
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        # One key per prefix of new_channel (``specific.``, ``healthz.``): a reader for each.
        loop = asyncio.get_running_loop()
        reader = self._readers.get((loop, real_channel))
        if reader is None:
            for old in [key for key in self._readers if key[0].is_closed()]:
                del self._readers[old]
            reader = self._readers[loop, real_channel] = _LocalReader(self, real_channel)
        return await reader.receive(channel)

    async def group_send(self, group, message):
        assert self.require_valid_group_name(group), "Group name not valid"
        if self.ring_size != 1:
            return await super().group_send(group, message)
        key = self._group_key(group)
        connection = self.connection(0)
        pipe = connection.pipeline(transaction=False)
        pipe.zremrangebyscore(key, min=0, max=int(time.time()) - self.group_expiry)
        pipe.zrange(key, 0, -1)
        _, members = await pipe.execute()
        if not members:
            return
        channel_names = [member.decode("utf8") for member in members]
        keys_by_connection, messages, capacities = self._map_channel_keys_to_connection(
            channel_names, message
        )
        channel_keys = keys_by_connection[0]
        now = time.time()
        over = await connection.eval(
            _GROUP_SEND, len(channel_keys), *channel_keys,
            *[messages[k] for k in channel_keys], *[capacities[k] for k in channel_keys],
            int(now) - int(self.expiry), now, self.expiry,
        )
        if over:
            metrics.channel_send_failed(layer="redis", reason="full", count=over)
            logger.warning("%s of %s channels over capacity in group %s", over, len(channel_names), group)

    # A full channel (ChannelFull) or Redis away: counted, then raised as before.
    send = metrics.counts_send_failures(channels_redis.core.RedisChannelLayer.send, layer="redis")
    group_send = metrics.counts_send_failures(group_send, layer="redis")


# KEYS: channel keys; ARGV: their messages, their capacities, expired-before, now, expiry.
_GROUP_SEND = """
local n = #KEYS
local over = 0
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[2 * n + 1])
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', KEYS[i], ARGV[2 * n + 2], ARGV[i])
        redis.call('EXPIRE', KEYS[i], ARGV[2 * n + 3])
    else
        over = over + 1
    end
end
return over
"""


class _LocalReader:
    """The reader of one process's local-channel key in one event loop. See RedisChannelLayer."""

    def __init__(self, layer, real_channel):
        self.layer = layer
        self.key = layer.prefix + real_channel
        self.index = layer.consistent_hash(real_channel)
        self.buffers = {}  # channel → BoundedQueue of messages
        self.read_at = {}  # channel → monotonic time of its last receive
        self.waiting = 0
        self.task = None
        self.swept = time.monotonic()

    async def receive(self, channel):
        buffer = self.buffers.get(channel)
        if buffer is None:
            buffer = self.buffers[channel] = BoundedQueue(self.layer.capacity)
        self.read_at[channel] = time.monotonic()
        if not buffer.empty():
            return buffer.get_nowait()
        self.waiting += 1
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="channel-layer-reader")
        try:
            return await buffer.get()
        finally:
            self.waiting -= 1

    async def _run(self):
        connection = self.layer.connection(self.index)
        while self.waiting:
            try:
                popped = await connection.zpopmin(self.key, self.layer.local_batch)
                if not popped:
                    one = await connection.bzpopmin(self.key, timeout=self.layer.brpop_timeout)
                    popped = [] if one is None else [(one[1], one[2])]
            except Exception:
                if not self.waiting:
                    return
                logger.warning("Reading the channel layer failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            for member, _ in popped:
                try:
                    self._deliver(self.layer.deserialize(member))
                except Exception:  # one bad message must not stop every socket's frames
                    logger.exception("A channel-layer message could not be delivered")
            self._sweep()

    def _deliver(self, message):
        channels = message.pop("__asgi_channel__")
        if isinstance(channels, str):
            channels = [channels]
        for channel in channels:
            buffer = self.buffers.get(channel)
            if buffer is None:
                buffer = self.buffers[channel] = BoundedQueue(self.layer.capacity)
                self.read_at.setdefault(channel, time.monotonic())
            if buffer.full():
                logger.warning("A socket's channel buffer is full; its oldest message is dropped")
            buffer.put_nowait(message if len(channels) == 1 else copy_message(message))

    def _sweep(self):
        now = time.monotonic()
        if now - self.swept < self.layer.expiry:
            return
        self.swept = now
        for channel, read_at in list(self.read_at.items()):
            buffer = self.buffers.get(channel)
            idle = buffer is None or not buffer._getters
            if idle and now - read_at > self.layer.expiry:
                self.buffers.pop(channel, None)
                del self.read_at[channel]
