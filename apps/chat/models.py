import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


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
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "archived", "-updated"], name="conv_sidebar")]

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
