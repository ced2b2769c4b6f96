import uuid
from pathlib import Path

from django.conf import settings
from django.db import models


class StoredFile:
    """A file at ``path`` under MEDIA_ROOT with its derived files beside it: the layout
    ``views.serve_stored`` reads (uploads, generated images, the copies a share keeps)."""

    @property
    def extension(self):
        return Path(self.path).suffix.lstrip(".")

    def variant_path(self, variant):
        """Relative path of a derived file, e.g. ``variant_path("thumb")``."""
        path = Path(self.path)
        return str(path.with_name(f"{path.stem}.{variant}{path.suffix}"))

    def absolute(self, relative=None):
        return Path(settings.MEDIA_ROOT) / (relative or self.path)


class Attachment(StoredFile, models.Model):
    """One stored image of one owner: an upload for a vision model, or a generated picture.

    ``path`` is relative to MEDIA_ROOT (``<owner id>/<random>.<ext>``); derived files (thumbnail,
    request-size variants) sit next to it as ``<random>.<variant>.<ext>`` and go with it.
    An upload has no conversation until the chat attaches it to a message.
    """

    class Kind(models.TextChoices):
        UPLOAD = "upload"
        GENERATED = "generated"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    conversation = models.ForeignKey(
        "chat.Conversation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    message = models.ForeignKey(
        "chat.Message",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    path = models.CharField(max_length=255, unique=True)
    # What the person called the file (shown and used for downloads, never as a path).
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    # Generated images only.
    prompt = models.TextField(blank=True)
    revised_prompt = models.TextField(blank=True)
    model_key = models.CharField(max_length=200, blank=True)
    size = models.CharField(max_length=20, blank=True)
    quality = models.CharField(max_length=20, blank=True)
    style = models.CharField(max_length=20, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        indexes = [models.Index(fields=["owner", "message"], name="attachment_owner_msg")]

    def __str__(self):
        return f"{self.kind} {self.original_name or self.id}"

