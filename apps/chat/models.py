import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Folder(models.Model):
    """A folder of one owner's conversations (the sidebar's groups); deleting it keeps them."""

    NAME_MAX_CHARS = 80

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_folders"
    )
    name = models.CharField(max_length=NAME_MAX_CHARS)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="folder_name_unique")
        ]

    def __str__(self):
        return self.name


class Conversation(models.Model):
    """One chat of one owner, with its own model and settings; messages form a tree."""

    class TitleSource(models.TextChoices):
        NONE = "none", "not yet titled"
        MODEL = "model", "from the title model"
        FALLBACK = "fallback", "from the first words (the title model failed)"
        USER = "user", "set by the user"

    class ImageDetail(models.TextChoices):
        AUTO = "auto"
        LOW = "low"
        HIGH = "high"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    title_source = models.CharField(
        max_length=10, choices=TitleSource.choices, default=TitleSource.NONE
    )
    model_key = models.CharField(max_length=200)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    image_detail = models.CharField(
        max_length=4, choices=ImageDetail.choices, default=ImageDetail.AUTO
    )
    # The leaf of the branch the owner last worked on: what a reload shows.
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    archived = models.BooleanField(default=False)
    # Never listed; deleted when the last socket holding it closes (apps.chat.temporary).
    temporary = models.BooleanField(default=False)
    # Kept at the top of the sidebar; never set by activity (pinning does not touch ``updated``).
    pinned = models.BooleanField(default=False)
    folder = models.ForeignKey(
        Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        # The sidebar's order: pinned first, then the most recently updated.
        indexes = [
            models.Index(fields=["owner", "archived", "-pinned", "-updated"], name="conv_sidebar_pins")
        ]

    def __str__(self):
        return self.title or f"Conversation {self.id}"

    @property
    def display_title(self):
        return self.title or "New conversation"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        INTERRUPTED = "interrupted"
        FILTERED = "filtered"
        ERROR = "error"

    FINAL_STATUSES = (
        Status.COMPLETE,
        Status.STOPPED,
        Status.INTERRUPTED,
        Status.FILTERED,
        Status.ERROR,
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    model_key = models.CharField(max_length=200, blank=True)
    group = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Of the completion tokens, those the model spent reasoning (Responses API models).
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    # True when the upstream sent no usage and the tokens above were counted by Lapis.
    usage_estimated = models.BooleanField(default=False)
    # What the answer cost at the model's price when it was written (NULL: no known price).
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    # The model's reasoning summary (Responses API): shown collapsed above the answer, never
    # part of a prompt (prompts are built from ``content`` alone).
    reasoning = models.TextField(blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    # For admins only: names the group and deployment; never holds a secret.
    error_detail = models.TextField(blank=True)
    retry_after = models.FloatField(null=True, blank=True)
    # Shown with the message: e.g. that older messages were left out of the prompt.
    notice = models.TextField(blank=True)
    # Made by the browser so a repeated send is recognised; NULL (not "") for messages without
    # one, because the unique constraint below must ignore them.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # The last delta frame number whose text is in ``content`` (the checkpoint).
    seq = models.PositiveIntegerField(default=0)
    # Which server process runs the generation; with ``updated`` it tells a stale stream.
    worker = models.CharField(max_length=80, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique",
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "parent", "created"], name="msg_tree"),
            models.Index(fields=["status"], name="msg_status", condition=Q(status="streaming")),
        ]

    def __str__(self):
        return f"{self.role} message {self.id} ({self.status})"

    @property
    def is_final(self):
        return self.status in self.FINAL_STATUSES


class Summary(models.Model):
    """A checkpoint: the summary of a branch from its root down to ``last_message`` (inclusive).

    Messages form a tree, so the path root → ``last_message`` is the covered range; the summary
    applies to every branch that runs through ``last_message``. A later overflow makes a new
    checkpoint from ``previous`` plus the messages after it (incremental, never from scratch).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="summaries")
    last_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    covered_count = models.PositiveIntegerField()  # messages of the branch it stands for
    text = models.TextField()
    model_key = models.CharField(max_length=200)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        verbose_name_plural = "summaries"

    def __str__(self):
        return f"Summary of {self.covered_count} message(s) of {self.conversation_id}"


class TemporaryHold(models.Model):
    """One open socket holding one temporary conversation (several tabs, several processes).

    ``touched`` is refreshed by the socket's process while it runs, so the holds of a process
    that died go stale and the sweep deletes what they held (apps.chat.temporary).
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    channel_name = models.CharField(max_length=200)
    worker = models.CharField(max_length=80)
    touched = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "channel_name"], name="temporary_hold_unique")
        ]
        indexes = [models.Index(fields=["worker"], name="temporary_hold_worker")]

    def __str__(self):
        return f"{self.channel_name} holds {self.conversation_id}"


class Purpose(models.TextChoices):
    CHAT = "chat"
    TITLE = "title"
    SUMMARY = "summary"
    API = "api"  # /v1/chat/completions with a personal key (apps.gateway)
    EMBEDDING = "embedding"  # /v1/embeddings
    AUDIO = "audio"  # /v1/audio/transcriptions and /v1/audio/speech (tokens estimated from text)


class UsageRecord(models.Model):
    """Tokens one call to a model used, and what for (one row per call, written once)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    model_key = models.CharField(max_length=200)
    deployment = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)  # part of completion_tokens
    # Of prompt_tokens, those Azure read from its prompt cache (billed at the cached price).
    cached_tokens = models.PositiveIntegerField(default=0)
    # True when the upstream sent no usage and Lapis counted the tokens itself.
    estimated = models.BooleanField(default=False)
    # The price at write time (apps.azure.pricing), kept so a later price change rewrites no
    # history; NULL when the model had no known price (then it shows tokens only).
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created"], name="usage_user"),
        ]

    def __str__(self):
        return f"{self.purpose} {self.model_key}: {self.prompt_tokens}+{self.completion_tokens}"


class BackgroundCallFailure(models.Model):
    """A title or summary call that failed; staff see these in the admin (users see a fallback)."""

    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    model_key = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=60)
    # Names the group and deployment; never a secret.
    admin_detail = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.purpose} failed ({self.error_code}) at {self.created:%Y-%m-%d %H:%M}"
