"""Spending budgets: checked before a request to a model starts; the database is the truth.

``check_budget(user=...)`` sums the owner's UsageRecord tokens (or costs, for a budget in a
currency) since the start of each budget's
period (UTC day or calendar month), one aggregate query per budget (the list of the user's
budgets cached), and raises OverBudget when one is used up. A cached running total (``tokens_used``) makes that query read only the rows
written since the last check; every TALLY_SECONDS the database sums everything again (a row
committed out of id order is counted then at the latest). Only the start of a request is checked: a budget
crossed while an answer is written lets that answer finish (its usage counts afterwards).
Selectors only: nothing here writes. Nothing here imports apps.chat's services (they call this).
"""

import time
from datetime import UTC, timedelta

from django.core.cache import cache
from django.db.models import F, Max, Q, Sum
from django.utils import timezone

from apps.governance.models import Budget

TALLY_SECONDS = 60  # how long a cached running total may be extended before a full sum
BUDGETS_SECONDS = 60  # how long a user's list of budgets is kept (a change moves the version)
BUDGETS_VERSION = "lapis:budgets:version"


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
    """The budgets that apply to ``user``: their own, their groups', and the defaults.

    Kept in the cache for BUDGETS_SECONDS under a version that every Budget change and group
    membership change moves (apps.governance.signals), so an admin's change counts at the
    next request, in every process sharing the cache."""
    key = f"lapis:budgets:{cache.get(BUDGETS_VERSION, 0)}:{user.pk}"
    budgets = cache.get(key)
    if budgets is None:
        budgets = list(
            Budget.objects.filter(
                Q(user_id=user.pk) | Q(group__user=user.pk) | Q(user__isnull=True, group__isnull=True)
            ).select_related("group")
        )
        cache.set(key, budgets, timeout=BUDGETS_SECONDS)
    return budgets


def budgets_changed():
    """Make every process read the budgets again (a Budget or a group membership changed)."""
    try:
        cache.incr(BUDGETS_VERSION)
    except ValueError:
        cache.set(BUDGETS_VERSION, int(time.time() * 1000), timeout=None)


def tokens_used(*, budget, user, since):
    """What was spent since ``since`` in the budget's unit (tokens, or the cost in its
    currency): by ``user`` (own and default budgets) or by every member of the budget's group.

    Usage rows are written once and never changed, so the sum up to the newest row seen is
    kept in the cache for TALLY_SECONDS with that row's id, and a check only adds the rows
    written since (a primary-key range). After TALLY_SECONDS the database sums it all again,
    which also picks up group membership changes and deleted rows."""
    from apps.chat.models import UsageRecord

    key = _tally_key(budget, user, since)
    tally = cache.get(key)
    if tally is None or tally[2] < time.time() - TALLY_SECONDS:
        tally = (0, 0, time.time())  # a full sum, from the database alone
    total, last_id, summed_at = tally
    records = UsageRecord.objects.filter(created__gte=since, pk__gt=last_id)
    if budget.group_id is not None:
        records = records.filter(user__groups=budget.group_id)
    else:
        records = records.filter(user_id=user.pk)
    if budget.unit == Budget.Unit.TOKENS:
        amount = Sum(F("prompt_tokens") + F("completion_tokens"))
    else:  # usage of models without a price (cost NULL) or in another currency adds nothing
        records, amount = records.filter(currency=budget.currency), Sum("cost")
    new = records.aggregate(total=amount, last=Max("pk"))
    if new["last"] is not None or not last_id:
        total, last_id = total + (new["total"] or 0), new["last"] or last_id
        cache.set(key, (total, last_id, summed_at), timeout=TALLY_SECONDS * 2)
    return total


def check_budget(*, user, now=None):
    """Raise OverBudget if any budget of ``user`` is used up; else return None.

    Budgets of one scope, unit and period (the user's own and the default, say) share one sum."""
    now = now or timezone.now()
    for budget, used, resets in budget_status(user=user, now=now):
        if used >= budget.limit:
            raise OverBudget(_refusal(budget, used, resets), resets=resets)


def budget_status(*, user, now=None):
    """[(budget, used, resets)] for every budget that applies to ``user`` (used in its unit)."""
    now = now or timezone.now()
    sums, status = {}, []
    for budget in budgets_for(user=user):
        start, resets = period_bounds(budget.period, now)
        scope = (budget.group_id, budget.unit, budget.currency, start)
        if scope not in sums:
            sums[scope] = tokens_used(budget=budget, user=user, since=start)
        status.append((budget, sums[scope], resets))
    return status


def _tally_key(budget, user, since):
    scope = f"group:{budget.group_id}" if budget.group_id is not None else f"user:{user.pk}"
    measure = "tokens" if budget.unit == Budget.Unit.TOKENS else f"cost:{budget.currency}"
    return f"lapis:budget:{scope}:{measure}:{int(since.timestamp())}"


def _refusal(budget, used, resets):
    whose = f"The group {budget.group.name}" if budget.group_id else "You"
    have = "has" if budget.group_id else "have"
    when = "today" if budget.period == Budget.Period.DAY else "this month"
    if budget.unit == Budget.Unit.TOKENS:
        what = f"{used:,} of {budget.tokens:,} tokens"
    else:
        what = f"{budget.display(used)} of {budget.limit_display}"
    return (
        f"{whose} {have} used {what} allowed {when}. The budget "
        f"resets on {resets:%Y-%m-%d at %H:%M} UTC; an admin can raise it."
    )
