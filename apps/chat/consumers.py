"""The chat socket: authenticate, validate frames, check ownership, call services. Nothing else."""

import asyncio
import contextlib
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.accounts import sessions
from apps.chat import protocol, temporary
from apps.chat.exchange import (
    ExchangeRefused,
    edit_message,
    interrupt_stale,
    regenerate_answer,
    send_message,
)
from apps.chat.generation import (
    answer_group,
    running_generation,
    send_control,
    start_generation,
    user_group,
)
from apps.chat.models import Conversation, Message
from apps.chat.preparation import prepared_exchange
from apps.chat.selectors import owned_messages
from apps.chat.serializers import conversation_to_dict, message_to_dict
from apps.chat.titles import start_title
from apps.governance import ratelimits
from apps.observability import observe
from project.dbthreads import on_chat_db

logger = logging.getLogger("lapis.chat")
# How long ``resume`` waits for the generating process to answer before using the checkpoint.
SNAPSHOT_WAIT = 1.5
ANSWER_FRAMES = ("send", "regenerate", "edit")  # frames that start an answer: rate-limited


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        self.groups_joined = set()
        self.snapshots_awaited = set()  # message ids whose resume waits for a snapshot
        self.background = set()
        self.temporary_held = set()  # temporary chats this socket keeps (apps.chat.temporary)
        try:  # the cap on open sockets per user, before this one counts as open
            self.socket_permit = await ratelimits.socket_permit(user=self.user)
        except ratelimits.RateLimited as exc:
            await self._refuse_socket(exc)
            return
        # Before accept: once the client sees the socket open, a revoke event reaches it, and so
        # does every answer of its user (another tab's included: the page follows those).
        self.session_groups = await sessions.join(self)
        await self._join(user_group(self.user.pk))
        await self.accept()
        observe.socket_opened(self)

    async def disconnect(self, code):
        # Leaving the groups is all: a generation this socket started goes on and is saved.
        observe.socket_closed(self)
        if (permit := getattr(self, "socket_permit", None)) is not None:
            permit.release()
        for task in getattr(self, "background", ()):
            task.cancel()
        for group in getattr(self, "groups_joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)
        await sessions.leave(self, getattr(self, "session_groups", ()))
        if getattr(self, "temporary_held", None):
            await temporary.arelease(channel_name=self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if not await sessions.still_signed_in(self.scope):  # a revoke event may have been lost
            await self.close(code=sessions.SIGNED_OUT)
            return
        try:
            frame = protocol.parse_client_frame(text_data if bytes_data is None else None)
        except protocol.ProtocolError as exc:
            await self._send(protocol.error(code=exc.code, message=exc.message))
            return
        try:
            async with self._limited(frame):  # before anything is stored or sent upstream
                await getattr(self, f"on_{frame.type}")(frame)
        except ratelimits.RateLimited as exc:
            await self._send(
                protocol.rate_limited(message=exc.message, retry_after=exc.retry_after, limit=exc.limit)
            )
        except ExchangeRefused as exc:
            await self._send(
                protocol.error(
                    code=exc.code, message=exc.message, message_id=getattr(frame, "message_id", None)
                )
            )
        except Exception:
            logger.exception("Chat frame %s failed", frame.type)
            await self._send(
                protocol.error(code="internal_error", message="Lapis could not handle that request.")
            )

    # A service stores the exchange and, in the same thread call, reads what its generation
    # needs (apps.chat.preparation): one turn on the chat's database threads (project.dbthreads,
    # not behind every socket's call on Channels' one), not one per read.
    async def on_send(self, frame):
        exchange = await on_chat_db(prepared_exchange)(
            send_message,
            user=self.user,
            client_id=frame.client_id,
            text=frame.text,
            conversation_id=frame.conversation_id,
            model_key=frame.model,
            parent_id=frame.parent_id,
            attachments=frame.attachments,
            image_options=frame.image,
            temporary=frame.temporary,
        )
        await self._started(exchange)

    async def on_regenerate(self, frame):
        exchange = await on_chat_db(prepared_exchange)(
            regenerate_answer, user=self.user, message_id=frame.message_id,
            client_id=frame.client_id, question_images=False,
        )
        await self._started(exchange, new_question=False)

    async def on_edit(self, frame):
        exchange = await on_chat_db(prepared_exchange)(
            edit_message, user=self.user, message_id=frame.message_id, text=frame.text, client_id=frame.client_id,
            attachments=frame.attachments,
        )
        await self._started(exchange)

    async def on_stop(self, frame):
        message = await self._owned(frame.message_id)
        if message.role != Message.Role.ASSISTANT:
            raise ExchangeRefused("not_found", "That answer does not exist.")
        if message.status != Message.Status.STREAMING:
            await self._send_final(message)  # already over: tell this socket how it ended
            return
        local = running_generation(message.id)
        if local is not None:  # running here: stop at once
            local.request_stop()
        else:
            await send_control(message_id=message.id, worker=message.worker, event={"type": "generation.stop"})

    async def on_resume(self, frame):
        message = await self._owned(frame.message_id)
        await self._hold(message.conversation)
        await self._join(answer_group(message.id))
        if message.is_final:
            await self._send_final(message)
            return
        self.snapshots_awaited.add(str(message.id))
        await send_control(
            message_id=message.id, worker=message.worker,
            event={"type": "generation.snapshot", "reply_channel": self.channel_name},
        )
        fallback = asyncio.create_task(self._snapshot_fallback(message.id))
        self.background.add(fallback)
        fallback.add_done_callback(self.background.discard)

    async def on_watch(self, frame):
        conversation = await Conversation.objects.filter(owner=self.user, id=frame.conversation_id).afirst()
        if conversation is None or not await self._hold(conversation):
            raise ExchangeRefused("not_found", "That conversation does not exist (a temporary chat ends with its last tab).")

    async def _hold(self, conversation):
        """Keep a temporary ``conversation`` while this socket is open (nothing for others)."""
        if not conversation.temporary:
            return True
        if conversation.pk in self.temporary_held:  # a repeated watch or resume costs no write
            return await Conversation.objects.filter(pk=conversation.pk).aexists()
        self.temporary_held.add(conversation.pk)
        return await temporary.ahold(conversation=conversation, channel_name=self.channel_name)

    async def on_ping(self, frame):
        await self._send(protocol.pong())

    async def dispatch(self, message):
        # Channels closes old database connections before every handler: one hop to its single
        # database thread each. A relayed frame touches no database, and with many answers
        # those hops (one per frame per socket) queue every socket's ORM calls behind them. A
        # client frame's database calls close old connections in their own hops (the session
        # check, the exchange, ``_owned``) and a disconnect reads nothing: no hop either.
        kind = message.get("type")
        if kind == "chat.frame":
            await self.chat_frame(message)
        elif kind == "websocket.receive":
            await self.websocket_receive(message)
        elif kind == "websocket.disconnect":
            await self.websocket_disconnect(message)
        else:
            await super().dispatch(message)

    async def session_revoked(self, event):
        """Signed out, deactivated, or rights changed elsewhere (apps.accounts.sessions)."""
        await self.close(code=event.get("code", sessions.SIGNED_OUT))

    async def chat_frame(self, event):
        """A frame from the channel layer (a generation, a title task): pass it on."""
        frame = event["frame"]
        if frame["type"] == "snapshot":
            self.snapshots_awaited.discard(frame["message_id"])
        elif frame["type"] == "delta" and frame["message_id"] in self.snapshots_awaited:
            return  # the snapshot on its way already holds this text
        await self._send(frame)
        if frame["type"] == "done":
            group = answer_group(frame["message_id"])
            self.groups_joined.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _started(self, exchange, *, new_question=True):
        answer = exchange.assistant_message
        await self._hold(exchange.conversation)
        await self._join(answer_group(answer.id))
        frames = []
        if new_question and exchange.user_message is not None:
            frames.append(self._created(exchange.user_message, exchange.images or ()))
        frames.append(self._created(answer))
        if not exchange.created:  # a repeated client_id: show what exists, start nothing
            for frame in frames:
                await self._send(frame)
            await self.on_resume(protocol.Resume(message_id=answer.id, seq=0))
            return
        frames.append(protocol.conversation_updated(conversation=conversation_to_dict(exchange.conversation)))
        for frame in frames:  # every socket of the user: other tabs follow along
            await self.channel_layer.group_send(
                user_group(self.user.pk), {"type": "chat.frame", "frame": frame}
            )
        task = start_generation(
            answer.id, image_options=exchange.image_options, prepared=exchange.prepared
        )
        self.answer_permit.hold_for(task)  # its running-at-once slot, until it ends
        if new_question and not exchange.conversation.temporary:  # never listed: no title call
            start_title(exchange, user_id=self.user.pk)  # its own task, in parallel with the answer

    async def _snapshot_fallback(self, message_id):
        """If no process answered the snapshot request, the checkpoint in the database is it."""
        await asyncio.sleep(SNAPSHOT_WAIT)
        if str(message_id) not in self.snapshots_awaited:
            return
        self.snapshots_awaited.discard(str(message_id))
        await database_sync_to_async(interrupt_stale)(Message.objects.filter(id=message_id))
        message = await Message.objects.aget(id=message_id)
        if message.is_final:
            await self._send_final(message)
        else:
            await self._send(
                protocol.snapshot(
                    message_id=message.id, seq=message.seq, text=message.content,
                    status=message.status, reasoning=message.reasoning,
                )
            )

    async def _send_final(self, message):
        data = message_to_dict(message, for_staff=self.user.is_staff)
        await self._send(
            protocol.snapshot(
                message_id=message.id, seq=message.seq, text=message.content,
                status=message.status, reasoning=message.reasoning,
            )
        )
        await self._send(
            protocol.done(
                message_id=message.id,
                status=message.status,
                seq=message.seq,
                finish_reason=message.finish_reason,
                usage=data["usage"],
                error=data["error"],
                notice=message.notice,
            )
        )

    async def _owned(self, message_id):
        # database_sync_to_async, not the async ORM: its hop also closes old connections of
        # the database thread (``dispatch`` skips Channels' own hop for client frames).
        message = await database_sync_to_async(_message_for)(user=self.user, message_id=message_id)
        if message is None:
            raise ExchangeRefused("not_found", "That message does not exist.")
        return message

    def _created(self, message, attachments=()):
        return protocol.message_created(
            conversation_id=message.conversation_id,
            message=message_to_dict(message, for_staff=self.user.is_staff, attachments=attachments),
        )

    async def _join(self, group):
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def _send(self, frame):
        await self.send(text_data=json.dumps(frame))

    @contextlib.asynccontextmanager
    async def _limited(self, frame):
        """The user's answer limits for a frame that starts an answer (``self.answer_permit``,
        held by the generation ``_started`` starts, else released at the end of the block)."""
        if frame.type not in ANSWER_FRAMES:
            yield
            return
        async with ratelimits.answer_permit(user=self.user) as self.answer_permit:
            yield

    async def _refuse_socket(self, exc):
        """Accepted only to say why (a refused handshake carries no reason), then closed."""
        await self.accept()
        await self._send(
            protocol.rate_limited(message=exc.message, retry_after=exc.retry_after, limit=exc.limit)
        )
        await self.close(code=ratelimits.SOCKET_CLOSE_CODE, reason="too many open sockets")


def _message_for(*, user, message_id):
    """The message ``message_id`` if its conversation is ``user``'s, else None (sync)."""
    return owned_messages(user=user).filter(id=message_id).first()
