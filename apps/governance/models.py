"""What an admin sets to govern use: rate limits (and, in ``quotas``, spending budgets).

A row applies to one user or to one Django group (groups come from company sign-in too, see
apps.accounts.oidc). Empty fields inherit: a user's row overrides the groups', the groups'
override the defaults from settings (README: ``CHAT_ANSWERS_PER_MINUTE`` and friends).
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Coalesce


class RateLimit(models.Model):
    """Per-user limits for a user or every member of a group; 0 means no limit."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    answers_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Answers a user may start per minute (0: no limit; empty: inherit)."
    )
    answers_at_once = models.PositiveIntegerField(
        null=True, blank=True, help_text="Answers a user may have running at once (0: no limit; empty: inherit)."
    )
    sockets = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Open chat connections (tabs) a user may have (0: no limit; empty: inherit).",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="ratelimit_user_xor_group",
            )
        ]

    def __str__(self):
        return f"Rate limit for {self.user or self.group}"

    def clean(self):
        if (self.user_id is None) == (self.group_id is None):
            raise ValidationError("Pick either a user or a group (one, not both).")


class Budget(models.Model):
    """A spending cap in tokens (prompt + completion) per day or calendar month (UTC).

    With a user: that user's spending. With a group: the combined spending of its members. With
    neither: a default every user gets on their own. Every budget that applies is checked; the
    first one used up refuses the next request (apps.governance.quotas).
    """

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.MONTH)
    tokens = models.PositiveBigIntegerField(help_text="Prompt + completion tokens allowed per period.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(user__isnull=False, group__isnull=False),
                name="budget_user_or_group_or_default",
            )
        ]

    def __str__(self):
        whom = self.user or self.group or "everyone (each user)"
        return f"{self.tokens:,} tokens per {self.period} for {whom}"

    def clean(self):
        if self.user_id is not None and self.group_id is not None:
            raise ValidationError("Pick a user, a group, or neither (a default for everyone), not both.")


class RetentionPolicy(models.Model):
    """How many days a conversation (with its media) is kept after its last activity.

    With a group: for the group's members. Without: the default for everyone else. A user in
    several groups with policies gets the longest of them (a group grants, as with rate limits);
    a group's policy wins over the default even when shorter. No policy at all: kept for good.
    """

    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    days = models.PositiveIntegerField(
        help_text="Days after a conversation's last activity before it and its images are deleted."
    )

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            # NULLs are distinct in a unique index (SQLite and PostgreSQL alike): compare
            # COALESCE(group, 0) so there is one default at most.
            models.UniqueConstraint(
                Coalesce("group", models.Value(0)), name="one_default_retention",
                violation_error_message="There is already a default policy (no group): change that one.",
            ),
            models.CheckConstraint(
                condition=models.Q(days__gte=1), name="retention_days_positive",
                violation_error_message="Keep conversations for at least 1 day.",
            ),
        ]

    def __str__(self):
        whom = f"members of {self.group}" if self.group_id else "everyone (default)"
        return f"{self.days} day{'s' if self.days != 1 else ''} for {whom}"
