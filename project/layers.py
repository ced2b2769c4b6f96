"""Channel layers whose cost per frame does not grow with the number of answers (issue 11).

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
import time
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

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
                pass
