"""Share links: a read-only snapshot of one branch of a conversation, for signed-in users.

The snapshot holds copies (text and image files), so later edits, regenerations or a deleted
conversation do not change what a link shows; revoking deletes the copies.
"""

import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from apps.media.models import StoredFile


def new_token():
    """256 random bits, URL-safe: the link's only secret (the URL is unguessable, not public)."""
    return secrets.token_urlsafe(32)


class Share(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shares")
    # Where it was taken from; the snapshot stands without it.
    conversation = models.ForeignKey(
        "chat.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=200)
    model_key = models.CharField(max_length=200, blank=True)
    # Neither users nor groups: every signed-in user of this Lapis may open it.
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["owner", "-created"], name="share_owner")]

    def __str__(self):
        return f"Share of {self.title!r} by {self.owner_id}"

    @property
    def is_revoked(self):
        return self.revoked is not None

    def visible_to(self, user):
        """Whether ``user`` may open the share: signed in, not revoked, and in its audience."""
        if self.is_revoked or not user.is_authenticated or not user.is_active:
            return False
        if user.pk == self.owner_id:
            return True
        user_ids = {u.pk for u in self.users.all()}
        group_ids = {g.pk for g in self.groups.all()}
        if not user_ids and not group_ids:
            return True
        if user.pk in user_ids:
            return True
        return bool(group_ids) and user.groups.filter(pk__in=group_ids).exists()


class SharedMessage(models.Model):
    """One message of the snapshot, in branch order (``position`` 0 is the first)."""

    share = models.ForeignKey(Share, on_delete=models.CASCADE, related_name="messages")
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=10)
    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    model_key = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["share", "position"], name="shared_message_position")
        ]

    def __str__(self):
        return f"{self.role} #{self.position} of share {self.share_id}"


class SharedImage(StoredFile, models.Model):
    """A copy of a message's image, stored under ``shares/<share id>/``: served to the share's
    viewers only (its owner's original keeps its own owner-only address)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    share = models.ForeignKey(Share, on_delete=models.CASCADE, related_name="images")
    message = models.ForeignKey(SharedMessage, on_delete=models.CASCADE, related_name="images")
    path = models.CharField(max_length=255, unique=True)
    original_name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=10)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    revised_prompt = models.TextField(blank=True)

    class Meta:
        ordering = ["message", "id"]

    def __str__(self):
        return f"shared image {self.id}"
