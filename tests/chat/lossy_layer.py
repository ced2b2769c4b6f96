"""Real channel layers that lose chosen frames, as a full Redis group or a network blip would.

Used by a live server started with ``DJANGO_SETTINGS_MODULE=tests.chat.lossy_settings``: of
every answer it keeps the first ``LAPIS_TEST_KEEP_DELTAS`` delta frames (default 2) sent to the
answer's group and drops the later ones and the ``done``. Frames sent to one channel (the
generation's snapshot for ``resume``) and frames the consumer writes itself are untouched, so
what is lost is exactly the tail of the live stream. Each drop is logged, so a test can tell
that the loss it recovers from really happened.
"""

import logging
import os

from project.layers import InMemoryChannelLayer, RedisChannelLayer

logger = logging.getLogger("lapis.chat")


class LossyMixin:
    async def group_send(self, group, message):
        frame = message.get("frame") or {}
        if group.startswith("answer.") and self._loses(frame):
            logger.warning("lossy layer dropped %s %s of %s", frame["type"], frame.get("seq"), group)
            return
        await super().group_send(group, message)

    @staticmethod
    def _loses(frame):
        keep = int(os.environ.get("LAPIS_TEST_KEEP_DELTAS", "2"))
        if frame.get("type") == "done":
            return True
        return frame.get("type") == "delta" and frame.get("seq", 0) > keep


class LossyInMemoryChannelLayer(LossyMixin, InMemoryChannelLayer):
    pass


class LossyRedisChannelLayer(LossyMixin, RedisChannelLayer):
    pass
