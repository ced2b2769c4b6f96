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

from apps.chat.models import UsageRecord


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
    """A spending cap per day or calendar month (UTC): in tokens (prompt + completion) or in a
    currency (the cost stored with each usage row at its model's price).

    With a user: that user's spending. With a group: the combined spending of its members. With
    neither: a default every user gets on their own. Every budget that applies is checked; the
    first one used up refuses the next request (apps.governance.quotas). A currency budget
    counts only usage priced in its currency: models without a known price cost nothing there.
    """

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    class Unit(models.TextChoices):
        TOKENS = "tokens"
        CURRENCY = "currency"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.MONTH)
    unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.TOKENS)
    tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Prompt + completion tokens allowed per period (unit: tokens)."
    )
    amount = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True,
        help_text="Money allowed per period, e.g. 50.00 (unit: currency).",
    )
    currency = models.CharField(
        max_length=3, default="USD", help_text="ISO 4217 code of the amount, as in the models' pricing."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(user__isnull=False, group__isnull=False),
                name="budget_user_or_group_or_default",
            ),
            models.CheckConstraint(
                condition=models.Q(unit="tokens", tokens__isnull=False)
                | models.Q(unit="currency", amount__isnull=False),
                name="budget_limit_in_its_unit",
            ),
        ]

    def __str__(self):
        whom = self.user or self.group or "everyone (each user)"
        return f"{self.limit_display} per {self.period} for {whom}"

    @property
    def limit(self):
        """The cap in the budget's unit: an int of tokens or a Decimal amount."""
        return self.tokens if self.unit == self.Unit.TOKENS else self.amount

    @property
    def limit_display(self):
        return self.display(self.limit)

    def display(self, value):
        """``value`` (tokens or money) written in the budget's unit."""
        if self.unit == self.Unit.TOKENS:
            return f"{value or 0:,} tokens"
        from apps.azure.pricing import format_cost

        return format_cost(value or 0, self.currency)

    def clean(self):
        from apps.azure.pricing import CURRENCY

        if self.user_id is not None and self.group_id is not None:
            raise ValidationError("Pick a user, a group, or neither (a default for everyone), not both.")
        if self.unit == self.Unit.TOKENS and self.tokens is None:
            raise ValidationError({"tokens": "A token budget needs the number of tokens."})
        if self.unit == self.Unit.CURRENCY:
            if self.amount is None:
                raise ValidationError({"amount": "A currency budget needs the amount."})
            if self.amount < 0:
                raise ValidationError({"amount": "The amount must be 0 or more."})
            if not CURRENCY.match(self.currency or ""):
                raise ValidationError({"currency": "Use a three-letter ISO 4217 code in capitals, e.g. USD."})


class UsageReport(UsageRecord):
    """The admin's usage dashboard (apps.governance.dashboard) over the usage records: a proxy,
    so the dashboard has its own place and view permission in the admin; no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "usage dashboard"
        verbose_name_plural = "usage dashboard"


class UsageDaily(models.Model):
    """Usage per UTC day, user, model, deployment and currency: what the dashboard reads.

    Written by database triggers on chat_usagerecord (migration 0006), in the same transaction
    as the row itself, on insert, update and delete alike: it is always exactly the sum of the
    usage rows, whoever writes them (Lapis, a bulk import, an admin's delete). Never written by
    Python. ``user_id`` is a plain number (0: none) so a deleted user's days stay counted.
    ``cost`` sums the priced rows; rows without a price have ``currency`` "" and add 0.
    """

    day = models.DateField()
    user_id = models.BigIntegerField(default=0)
    model_key = models.CharField(max_length=200)
    deployment = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    calls = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user_id", "model_key", "deployment", "currency"], name="usage_daily_key"
            )
        ]
        verbose_name_plural = "usage per day"

    def __str__(self):
        return f"{self.day} user {self.user_id} {self.model_key}: {self.calls} calls"


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
