"""Spending budgets: checked before a request to a model starts; the database is the truth.

``check_budget(user=...)`` sums the owner's UsageRecord tokens since the start of each budget's
period (UTC day or calendar month) with one aggregate query per budget (index ``usage_user``),
and raises OverBudget when one is used up. Only the start of a request is checked: a budget
crossed while an answer is written lets that answer finish (its usage counts afterwards).
Selectors only: nothing here writes. Nothing here imports apps.chat's services (they call this).
"""

from datetime import UTC, timedelta

from django.db.models import F, Q, Sum
from django.utils import timezone

from apps.governance.models import Budget


class OverBudget(Exception):
    """``message`` says what was used of what and when it resets; ``resets`` is a datetime."""

    code = "over_budget"

    def __init__(self, message, *, resets):
        super().__init__(message)
        self.message = message
        self.resets = resets


def period_bounds(period, now):
    """(start, next start) of the UTC day or calendar month holding ``now``."""
    now = now.astimezone(UTC)
    if period == Budget.Period.DAY:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, start.replace(year=year, month=month)


def budgets_for(*, user):
    """The budgets that apply to ``user``: their own, their groups', and the defaults."""
    return list(
        Budget.objects.filter(
            Q(user_id=user.pk) | Q(group__user=user.pk) | Q(user__isnull=True, group__isnull=True)
        ).select_related("group")
    )


def tokens_used(*, budget, user, since):
    """Tokens spent since ``since``: by ``user`` (own and default budgets) or by every member
    of the budget's group."""
    from apps.chat.models import UsageRecord

    records = UsageRecord.objects.filter(created__gte=since)
    if budget.group_id is not None:
        records = records.filter(user__groups=budget.group_id)
    else:
        records = records.filter(user_id=user.pk)
    total = records.aggregate(total=Sum(F("prompt_tokens") + F("completion_tokens")))["total"]
    return total or 0


def check_budget(*, user, now=None):
    """Raise OverBudget if any budget of ``user`` is used up; else return None."""
    now = now or timezone.now()
    for budget in budgets_for(user=user):
        start, resets = period_bounds(budget.period, now)
        used = tokens_used(budget=budget, user=user, since=start)
        if used >= budget.tokens:
            raise OverBudget(_refusal(budget, used, resets), resets=resets)


def _refusal(budget, used, resets):
    whose = f"The group {budget.group.name}" if budget.group_id else "You"
    have = "has" if budget.group_id else "have"
    when = "today" if budget.period == Budget.Period.DAY else "this month"
    return (
        f"{whose} {have} used {used:,} of {budget.tokens:,} tokens allowed {when}. The budget "
        f"resets on {resets:%Y-%m-%d at %H:%M} UTC; an admin can raise it."
    )
