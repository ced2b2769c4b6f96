"""Generating one answer: stream from Azure, relay to sockets, checkpoint, finish once.

A generation is an asyncio task of the process that received the request; nothing awaits it,
so a socket that goes away does not stop it. It talks to sockets only through the channel layer:

- ``answer.<message id>``: the group of sockets watching the answer; gets ``delta`` frames
  (coalesced every FRAME_INTERVAL) and the final ``done``.
- ``generation.<worker>``: the control channel of the process that runs the answer (its
  ``Message.worker``), which any process can send to; gets ``generation.stop`` and
  ``generation.snapshot`` (a socket asking for the text so far, for ``resume``) with the
  ``message_id``. ONE listener per process reads it, not one per answer: on Redis every
  listener holds a pooled connection in a blocking pop, and 1,000 of them exhaust the pool. A
  stop or snapshot request that arrives before its generation started here is kept for it.

The database holds the truth: the process's checkpoint writer (apps.chat.checkpoints) saves the
relayed text of every running answer at most every CHECKPOINT_INTERVAL in one transaction, with
a heartbeat when nothing changes, and the final state is written once (retried while the
database is away; the user is told honestly if it could not be saved).
"""

import asyncio
import contextlib
import logging
import re
import time
from contextlib import aclosing

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from apps.azure import access
from apps.azure.client import (
    FilterUnavailable,
    Finish,
    ReasoningDelta,
    Retry,
    TextDelta,
    ToolCall,
    Usage,
    stream_chat,
)
from apps.azure.errors import UpstreamError, wait_phrase
from apps.azure.responses import stream_responses
from apps.chat import checkpoints, imagegen, preparation, protocol, vision
from apps.chat.budget import message_usage, usage_fields
from apps.chat.models import Message, Purpose
from apps.chat.prompts import PromptTooLong
from apps.chat.summaries import prepare_prompt
from apps.chat.workers import WORKER_ID
from apps.observability.observe import AnswerWatch

logger = logging.getLogger("lapis.chat")

FRAME_INTERVAL = 0.04
CHECKPOINT_INTERVAL = checkpoints.CHECKPOINT_INTERVAL
HEARTBEAT_INTERVAL = checkpoints.HEARTBEAT_INTERVAL
# Seconds without a chunk from Azure before the answer counts as stalled (setting
# CHAT_IDLE_TIMEOUT; the tests use about a second).
DEFAULT_IDLE_TIMEOUT = 60.0

_running = {}  # str(message id) → Generation: the tasks of this process, kept from being collected
_listeners = {}  # event loop → the task reading this process's control channel
# str(message id) → [(monotonic time, event)]: control events for an answer not (yet) running
# here, replayed when it starts; dropped after EARLY_KEPT (it ended, or never starts here).
_early = {}
EARLY_KEPT = 60.0
_NOT_IN_NAMES = re.compile(r"[^a-zA-Z0-9_.-]")


def answer_group(message_id):
    return f"answer.{message_id}"


def control_channel(worker):
    """The control channel of the server process ``worker`` (a ``Message.worker``).

    A plain channel, not a process-local one (``new_channel``): channels_redis reads every
    process-local channel of a process with one shared blocking pop, and cancelling the listener
    in the middle of that pop can drop a frame meant for a socket.
    """
    return "generation." + _NOT_IN_NAMES.sub("-", worker or "unknown")


def user_group(user_id):
    return f"user.{user_id}"


def start_generation(message_id, *, image_options=None, prepared=None):
    """Start generating the answer ``message_id`` in this process; return the task.

    ``image_options`` (size/quality/style) apply when the answer's model is an image model.
    ``prepared``: its apps.chat.preparation.Prepared when the caller read it already (the
    generation then reads nothing before its upstream request), else it is read first.
    """
    key = str(message_id)
    generation = Generation(message_id)
    generation.image_options = image_options or {}
    generation.prepared = prepared
    generation.task = asyncio.create_task(generation.run(), name=f"generation-{message_id}")
    _running[key] = generation
    generation.task.add_done_callback(lambda _: _ended(key))
    for _, event in _early.pop(key, ()):
        generation.control(event)
    _ensure_listener()
    return generation.task


def running_generation(message_id):
    return _running.get(str(message_id))


def _ended(key):
    _running.pop(key, None)
    if not _running:  # nothing left to control: no task outlives the answers
        listener = _listeners.pop(asyncio.get_running_loop(), None)
        if listener is not None:
            listener.cancel()


def _ensure_listener():
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.done():
        for old in [key for key in _listeners if key.is_closed()]:
            del _listeners[old]
        _listeners[loop] = asyncio.create_task(_listen(), name="generation-control")


async def _listen():
    """Read this process's control channel; hand each event to its answer's generation."""
    layer, channel = get_channel_layer(), control_channel(WORKER_ID)
    while True:
        event = await layer.receive(channel)
        key = str(event.get("message_id"))
        generation = _running.get(key)
        if generation is not None:
            generation.control(event)
            continue
        now = time.monotonic()
        for old in [k for k, events in _early.items() if now - events[-1][0] > EARLY_KEPT]:
            del _early[old]
        _early.setdefault(key, []).append((now, event))


async def send_control(*, message_id, worker, event):
    """Send ``event`` (``generation.stop`` or ``generation.snapshot``) to the generation of
    ``message_id``, run by the process ``worker``; the caller has checked the owner."""
    await get_channel_layer().send(control_channel(worker), {**event, "message_id": str(message_id)})


async def stop_answer(message_id, *, worker):
    """Stop the answer ``message_id`` wherever it runs (here at once, else through the control
    channel of its process ``worker``). Its text is saved as ``stopped`` by the generation
    itself; the caller has checked the owner."""
    local = running_generation(message_id)
    if local is not None:
        local.request_stop()
    else:
        await send_control(message_id=message_id, worker=worker, event={"type": "generation.stop"})


async def finish_for_shutdown():
    """SIGTERM (project.lifecycle): running answers may finish for SHUTDOWN_GRACE seconds; the
    rest are cancelled, which saves their text as ``interrupted`` (see ``Generation.run``)."""
    tasks = [g.task for g in list(_running.values()) if g.task is not None]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=float(getattr(settings, "SHUTDOWN_GRACE", 5)))
    for task in pending:
        task.cancel()
    if pending:
        # Bounded: a database that stays away must not keep the process from exiting.
        await asyncio.wait(pending, timeout=checkpoints.save_patience() + 5)


def idle_timeout():
    return float(getattr(settings, "CHAT_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT))


class Generation:
    def __init__(self, message_id):
        self.message_id = message_id
        self.layer = get_channel_layer()
        self.task = None
        self.reader = None
        # The answer as chunks: ``relayed`` (one per delta frame sent) and ``pending`` (pieces
        # read since the last frame). Joined only per frame, checkpoint and end, never per
        # token, so a long answer costs O(n) rather than O(n²) in its length.
        self.relayed = []
        self.pending = []
        # The reasoning summary (Responses API models), relayed in the same frames as the text.
        self.reasoning_relayed = []
        self.reasoning_pending = []
        self.flushing = asyncio.Lock()  # frames leave in seq order, the snapshot after them
        self.arrived = asyncio.Event()  # set when text arrives, for the relay (``_relay``)
        self.seq = 0
        self.checkpointed_seq = 0
        self.last_write = time.monotonic()
        self.stop_requested = False
        self.finish_reason = ""
        self.filter_results = None
        self.usage = None
        self.for_staff = False
        self.notice = ""
        self.accounting = None  # (model, owner id, conversation id, prompt messages) once read
        self.image_options = {}
        self.prepared = None  # apps.chat.preparation.Prepared, if given at the start
        self.finished = False  # set (under ``flushing``) once no frame but ``done`` may follow
        self.snapshots = set()  # tasks answering snapshot requests
        self.watch = AnswerWatch()  # metrics and the answer's trace span (apps.observability)

    @property
    def text(self):
        """Everything received so far."""
        return "".join(self.relayed) + "".join(self.pending)

    @property
    def relayed_text(self):
        """The text of the delta frames 1..seq."""
        return "".join(self.relayed)

    @property
    def relayed_reasoning(self):
        """The reasoning summary of the delta frames 1..seq."""
        return "".join(self.reasoning_relayed)

    @property
    def reasoning(self):
        return "".join(self.reasoning_relayed) + "".join(self.reasoning_pending)

    def _kept(self, reason):
        """``reason``, saying the partial answer is kept when there is one."""
        if self.text:
            return f"{reason} The text written before this is kept."
        return reason

    def request_stop(self):
        """Stop reading (closing the upstream request); the text so far is saved as ``stopped``."""
        self.stop_requested = True
        if self.reader is not None:
            self.reader.cancel()

    def control(self, event):
        """A control event from the process's listener (see the module)."""
        if event.get("type") == "generation.stop":
            self.request_stop()
        elif event.get("type") == "generation.snapshot" and not self.finished:
            task = asyncio.create_task(self._send_snapshot(event["reply_channel"]))
            self.snapshots.add(task)
            task.add_done_callback(self.snapshots.discard)

    async def run(self):
        relay = asyncio.create_task(self._relay())
        status, error = Message.Status.COMPLETE, None
        try:
            prepared, self.prepared = self.prepared, None
            if prepared is None:
                prepared = await database_sync_to_async(preparation.load)(self.message_id)
            self.for_staff = prepared.message.conversation.owner.is_staff
            self.watch.started(prepared.message)  # before the reader: its upstream span is a child
            self.reader = asyncio.create_task(self._read(prepared))
            if self.stop_requested:  # a stop that came before the reader existed
                self.reader.cancel()
            status, error = await self.reader
        except asyncio.CancelledError:
            if not self.stop_requested:
                # The process is shutting down: keep the text, say what happened, re-raise.
                status, error = Message.Status.INTERRUPTED, _interrupted_error()
                raise
            status = Message.Status.STOPPED
        except Exception as exc:
            logger.exception("Generation %s failed", self.message_id)
            status, error = Message.Status.ERROR, _internal_error(exc)
        finally:
            # Cancel the relay and the snapshots between frames (a delta cancelled half-published
            # would be lost while its seq counts), and wait for them so nothing they send can
            # follow ``done``.
            async with self.flushing:
                self.finished = True
                pending = [relay, *self.snapshots]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            try:
                await self._flush()
                await self._finish(status, error)
            except Exception:
                # Logged here, not left as "Task exception was never retrieved": nothing awaits
                # a generation. The writer has the final state or retries it.
                logger.exception("Finishing answer %s failed", self.message_id)
            self.watch.finished(status, error)

    async def _read(self, prepared):
        """Read the upstream stream into ``self.text``; return (status, error dict or None)."""
        # The owner's view: the image tool and a re-check of the model (access may have been
        # taken away since the answer was queued) follow the access rules.
        message, registry = prepared.message, prepared.registry
        model = imagegen.find_model(message.model_key, registry.registry)
        self.notice = message.notice  # e.g. a vision stand-in, set when the answer was created
        if model is None:
            return Message.Status.ERROR, {
                "code": "unknown_model",
                "message": f"The model {message.model_key} is no longer configured.",
            }
        if not registry.allows(model):
            return Message.Status.ERROR, {"code": "model_not_allowed", "message": str(access.refusal(model))}
        branch = prepared.branch
        try:
            if model.type == "image":
                return await imagegen.answer_with_image(
                    self, message=message, model=model, prompt=branch[-1].content,
                    options=self.image_options,
                )
            return await self._answer(
                message, model=model, branch=branch, registry=registry, images=prepared.images,
                summary=prepared.summary,
            )
        except UpstreamError as exc:
            error = _upstream_error(exc)
            error["message"] = self._kept(error["message"])
            if exc.code == "upstream_broken" and self.text:
                # The connection dropped mid-answer: what arrived is kept, Regenerate offered.
                return Message.Status.INTERRUPTED, error
            # content_policy: an image model's refusal, the picture's content filter.
            filtered = exc.code.startswith("content_filter") or exc.code == "content_policy"
            return (Message.Status.FILTERED if filtered else Message.Status.ERROR), error

    async def _answer(self, message, *, model, branch, registry, images, summary):
        """Answer with the chat ``model``: prompt, stream, maybe one tool round; (status, error).

        ``branch`` (its user messages with image placeholders), ``images`` and ``summary`` as
        apps.chat.preparation read them. Raises UpstreamError for ``_read`` to map."""
        try:
            # Fits the branch into the window: a summary checkpoint or dropped messages (with a
            # notice) when it has outgrown it. Counting runs off the event loop.
            prompt, notice = await prepare_prompt(
                message=message, branch=branch, model=model, registry=registry, previous=summary,
            )
        except PromptTooLong as exc:
            return Message.Status.ERROR, {"code": "context_length_exceeded", "message": str(exc)}
        if notice:
            await self._set_notice(message, notice)
        # Only now are image bytes read: for the messages that made it into the prompt.
        messages = await vision.materialise(prompt.messages, images)
        self.accounting = (model, message.conversation.owner_id, message.conversation_id, messages)
        image_model = imagegen.tool_image_model(model, registry)
        tools = imagegen.tools_for(image_model) if image_model else None
        calls = await self._stream(model, message, messages, tools=tools)
        if calls:
            # One tool round: make the picture, then the model continues its answer.
            follow_up = await imagegen.run_tool_calls(
                self, message=message, calls=calls, image_model=image_model, text_before=self.text,
            )
            if self.relayed or self.pending:
                self.pending.append("\n\n")
            await self._stream(
                model, message, [*messages, *follow_up], tools=tools, tool_choice="none"
            )
        if self.finish_reason == "content_filter":
            reason = _filter_message("Azure's content filter stopped the answer", self.filter_results)
            return Message.Status.FILTERED, {"code": "content_filter_answer", "message": self._kept(reason)}
        return Message.Status.COMPLETE, None

    async def _stream(self, model, message, messages, *, tools=None, tool_choice=None):
        """Stream one request into ``self.text``; return the tool calls the model made."""
        calls = []
        if model.responses_api:
            stream = stream_responses(
                model, messages, params=_user_params(message.conversation), tools=tools,
                tool_choice=tool_choice, idle_timeout=idle_timeout(),
            )
        else:
            stream = stream_chat(
                model,
                messages,
                params=_user_params(message.conversation),
                tools=tools,
                tool_choice=tool_choice,
                idle_timeout=idle_timeout(),
            )
        # aclosing: a cancelled read (stop, shutdown) closes the upstream response at once.
        async with aclosing(stream):
            async for event in stream:
                if isinstance(event, TextDelta):
                    if not self.relayed and not self.pending:
                        self.watch.first_text()
                    self.pending.append(event.text)
                    self.arrived.set()
                elif isinstance(event, ReasoningDelta):
                    self.reasoning_pending.append(event.text)
                    self.arrived.set()
                elif isinstance(event, ToolCall):
                    calls.append(event)
                elif isinstance(event, Finish):
                    self.finish_reason = event.reason or ""
                    self.filter_results = event.filter_results
                elif isinstance(event, Usage):
                    self.usage = _added(self.usage, event)
                elif isinstance(event, Retry):
                    await self._publish(protocol.retrying(
                        message_id=self.message_id, seconds=event.seconds, status=event.status,
                        attempt=event.attempt, message=_retry_message(event),
                    ))
                elif isinstance(event, FilterUnavailable):
                    await self._set_notice(message, _filter_unavailable_notice(event))
        return calls

    async def _relay(self):
        """Send new text as one delta frame as soon as it arrives, then at most one frame per
        FRAME_INTERVAL (pieces arriving meanwhile are coalesced): the first text goes out
        without waiting for a tick. Checkpoints are the process writer's (``_checkpoint``):
        the relay never waits for the database."""
        self._checkpoint()
        while True:
            await self._text_pending()
            await self._flush()
            await asyncio.sleep(FRAME_INTERVAL)

    async def _text_pending(self):
        """Return once text is pending, or after FRAME_INTERVAL (text added without setting
        ``arrived`` still goes out within a tick)."""
        if self.pending or self.reasoning_pending:
            return
        self.arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FRAME_INTERVAL):
                await self.arrived.wait()

    async def _flush(self):
        """Relay the pending text as the next delta frame (the relay and a snapshot both flush:
        the lock keeps their frames in seq order)."""
        async with self.flushing:
            if not self.pending and not self.reasoning_pending:
                return
            chunk = "".join(self.pending)
            self.pending.clear()
            self.relayed.append(chunk)
            thought = "".join(self.reasoning_pending)
            self.reasoning_pending.clear()
            self.reasoning_relayed.append(thought)
            self.seq += 1
            await self._publish(protocol.delta(
                message_id=self.message_id, seq=self.seq, text=chunk, reasoning=thought,
            ))

    def _checkpoint(self):
        """Hand this answer to the process's checkpoint writer: it stores ``relayed_text`` (the
        frames 1..seq) when ``seq`` moved, else a heartbeat, in its batch, until ``_finish``."""
        checkpoints.writer().register(self)

    async def _finish(self, status, error):
        """The one final write (with the usage record), then ``done`` to every watching socket.

        If the database stays away longer than the save patience, ``done`` says the answer was
        not saved (the page keeps the text) and the writer saves it when the database is back.
        """
        usage, text = None, self.text
        fields = {"status": status, "content": text, "seq": self.seq, "updated": timezone.now()}
        fields["finish_reason"] = self.finish_reason
        fields["reasoning"] = self.reasoning
        if self.usage is not None:
            usage = {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens}
            fields.update(usage)
            if self.usage.reasoning_tokens:
                usage["reasoning_tokens"] = fields["reasoning_tokens"] = self.usage.reasoning_tokens
        if error:
            fields.update(
                error_code=error["code"],
                error_message=error["message"],
                error_detail=error.get("detail", ""),
                retry_after=error.get("retry_after"),
            )
        record = None
        if self.accounting is not None and (self.usage is not None or text):
            model, owner_id, conversation_id, prompt_messages = self.accounting
            try:
                record = await usage_fields(
                    purpose=Purpose.CHAT, model=model, user_id=owner_id,
                    conversation_id=conversation_id, usage=self.usage, messages=prompt_messages,
                    text=text,
                )
            except Exception:  # accounting must not cost the answer its final write
                logger.exception("Counting the usage of answer %s failed", self.message_id)
        if record is not None:  # tokens (Azure's or counted) and cost, shown with the answer
            shown, usage = message_usage(record)
            fields.update(shown)
        writer = checkpoints.writer()
        writer.unregister(self)
        if not await writer.finish(self.message_id, fields=fields, usage=record):
            error = _not_saved_error(error)
        public_error = {
            k: v for k, v in (error or {}).items() if k != "detail" or self.for_staff
        } or None
        await self._publish(
            protocol.done(
                message_id=self.message_id,
                status=status,
                seq=self.seq,
                finish_reason=self.finish_reason,
                usage=usage,
                error=public_error,
                notice=self.notice,
            )
        )
        if error and error.get("detail"):
            logger.warning("Answer %s failed: %s", self.message_id, error["detail"])

    async def _send_snapshot(self, reply_channel):
        await self._flush()
        # Built and sent under the lock: every delta up to its seq went before it, and none
        # after it can overtake it (the socket drops deltas while it waits). None once finished:
        # ``done`` is the last frame (the socket's fallback reads the final state).
        async with self.flushing:
            if self.finished:
                return
            frame = protocol.snapshot(
                message_id=self.message_id,
                seq=self.seq,
                text=self.relayed_text,
                status=Message.Status.STREAMING,
                reasoning=self.relayed_reasoning,
            )
            await self.layer.send(reply_channel, {"type": "chat.frame", "frame": frame})

    async def _publish(self, frame):
        await self.layer.group_send(answer_group(self.message_id), {"type": "chat.frame", "frame": frame})

    async def _set_notice(self, message, notice):
        if message.notice:  # keep the vision notice: both are true
            notice = f"{message.notice} {notice}"
        message.notice = self.notice = notice
        await Message.objects.filter(id=self.message_id).aupdate(notice=notice)


def _added(total, usage):
    """Usage over the requests of one answer (a tool round makes two)."""
    if total is None:
        return usage
    return Usage(
        prompt_tokens=(total.prompt_tokens or 0) + (usage.prompt_tokens or 0),
        completion_tokens=(total.completion_tokens or 0) + (usage.completion_tokens or 0),
        reasoning_tokens=(total.reasoning_tokens or 0) + (usage.reasoning_tokens or 0),
    )


def _user_params(conversation):
    params = {}
    if conversation.temperature is not None:
        params["temperature"] = conversation.temperature
    if conversation.max_output_tokens:
        params["max_tokens"] = conversation.max_output_tokens
    return params


def _filter_message(prefix, filter_results):
    flagged = [
        f"{category} ({result.get('severity', 'detected')})"
        for category, result in (filter_results or {}).items()
        if isinstance(result, dict) and result.get("filtered")
    ]
    return prefix + (f": {', '.join(flagged)}." if flagged else ".")


def _retry_message(event):
    """"Azure is busy (429). Lapis tries again in 2 seconds." for a Retry event."""
    when = wait_phrase(event.seconds)
    if event.status in (429, 503):
        return f"Azure is busy ({event.status}). Lapis tries again {when}."
    return f"Azure answered with an error ({event.status}). Lapis tries again {when}."


def _filter_unavailable_notice(event):
    what = "your message" if event.where == "prompt" else "this answer"
    reason = f" ({event.message})" if event.message else ""
    return f"Azure's content filter could not check {what}{reason}."


def _upstream_error(exc):
    error = {"code": exc.code, "message": exc.message, "detail": exc.admin_detail or ""}
    if exc.retry_after is not None:
        error["retry_after"] = exc.retry_after
    return error


def _interrupted_error():
    return {
        "code": "interrupted",
        "message": "The server stopped while this answer was being written; the text so far is kept.",
    }


def _not_saved_error(error):
    """The answer's own error (if any) plus the fact that it is not in the database yet."""
    saying = (
        "The database could not be reached, so this answer is not saved yet: copy the text if "
        "you need it now. Lapis saves it as soon as the database is back."
    )
    if error:
        return {**error, "code": "not_saved", "message": f"{error['message']} {saying}"}
    return {"code": "not_saved", "message": saying}


def _internal_error(exc):
    return {
        "code": "internal_error",
        "message": "Lapis hit an internal error while writing this answer; the text so far is kept.",
        "detail": type(exc).__name__,
    }
