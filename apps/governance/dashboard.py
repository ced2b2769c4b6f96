"""The admin usage dashboard: what people spend, over time, by user, group, model and deployment.

Selectors only. ``usage_rollup`` reads the usage per day, user, model, deployment and currency
from UsageDaily, which database triggers keep the exact sum of UsageRecord (aggregation in the
database at write time: 1,000,000 usage rows are a few thousand rollup rows); ``build_report``
turns those rows into the totals, the chart's series, the breakdown, the top users and the CSV.
Costs are the ones stored with each row at its model's price when it was written.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Sum

from apps.azure.pricing import COST_PLACES, format_cost
from apps.governance.models import Budget, UsageDaily

DIMENSIONS = {"user": "User", "group": "Group", "model": "Model", "deployment": "Deployment"}
DEFAULT_DAYS = 30
MAX_DAYS = 366
SERIES = 8  # the chart shows this many series; the rest is "other"
TOP_USERS = 10
NO_GROUP = "(no group)"
DELETED_USER = "(deleted user)"


@dataclass
class Filters:
    start: date
    end: date  # inclusive
    user: str = ""  # a username
    group: int | None = None
    model: str = ""
    by: str = "model"
    errors: list = field(default_factory=list)

    @property
    def days(self):
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def query(self):
        """The filters as the page's query string parameters (for the CSV link)."""
        params = {"start": self.start.isoformat(), "end": self.end.isoformat(), "by": self.by}
        if self.user:
            params["user"] = self.user
        if self.group:
            params["group"] = str(self.group)
        if self.model:
            params["model"] = self.model
        return params


def parse_filters(params, *, today=None):
    """Filters from the query string; a bad value is kept out and said in ``errors`` (what and
    where), the rest of the filters still apply."""
    today = today or datetime.now(UTC).date()
    errors = []

    def day(name, default):
        text = (params.get(name) or "").strip()
        if not text:
            return default
        try:
            return date.fromisoformat(text)
        except ValueError:
            errors.append(f"{name}: {text!r} is not a date (YYYY-MM-DD); showing {default.isoformat()}.")
            return default

    end = day("end", today)
    start = day("start", end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        errors.append("start is after end: showing the one day of end.")
        start = end
    if (end - start).days >= MAX_DAYS:
        start = end - timedelta(days=MAX_DAYS - 1)
        errors.append(f"The range is at most {MAX_DAYS} days: it starts on {start.isoformat()}.")
    group = None
    if params.get("group"):
        try:
            group = int(params["group"])
        except ValueError:
            errors.append(f"group: {params['group']!r} is not a group id.")
    by = params.get("by") or "model"
    if by not in DIMENSIONS:
        errors.append(f"by: {by!r} is not one of {', '.join(DIMENSIONS)}; showing by model.")
        by = "model"
    user = (params.get("user") or "").strip()
    if user and not get_user_model().objects.filter(username=user).exists():
        errors.append(f"user: nobody is called {user!r}.")
    return Filters(start=start, end=end, user=user, group=group,
                   model=(params.get("model") or "").strip(), by=by, errors=errors)


def _filtered(filters):
    """The UsageDaily rows the filters select (a range of the rollup's unique index)."""
    records = UsageDaily.objects.filter(day__gte=filters.start, day__lte=filters.end, calls__gt=0)
    if filters.user:
        records = records.filter(
            user_id__in=get_user_model().objects.filter(username=filters.user).values("pk")
        )
    if filters.group:
        members = get_user_model().objects.filter(groups=filters.group).values("pk")
        records = records.filter(user_id__in=members)
    if filters.model:
        records = records.filter(model_key=filters.model)
    return records


def _grouped(records, fields):
    """``records`` summed in the database per ``fields`` (currency always among them):
    [{*fields, prompt, completion, spent, calls}]; ``spent`` None for rows without a price,
    ``user_id`` None for usage without a user."""
    rows = (
        records.values(*fields, "currency")
        .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
                  spent=Sum("cost"), calls=Sum("calls"))
        .order_by()
    )
    result = []
    for row in rows:
        if not row["currency"]:
            row["spent"] = None
        elif row["spent"] is not None:  # SQLite sums decimals as floats: back to 10 places
            row["spent"] = Decimal(row["spent"]).quantize(COST_PLACES)
        if "user_id" in row:
            row["user_id"] = row["user_id"] or None
        result.append(row)
    return result


def usage_rollup(*, filters):
    """[{day, user_id, model_key, deployment, currency, prompt, completion, spent, calls}]:
    the filtered usage per day, user, model, deployment and currency (the CSV's rows), read
    from UsageDaily, which the database keeps the exact sum of the usage rows."""
    return _grouped(_filtered(filters), ["day", "user_id", "model_key", "deployment"])


class Tally:
    """Calls, tokens and costs per currency of one slice of the rows."""

    def __init__(self):
        self.calls = self.prompt = self.completion = 0
        self.costs = defaultdict(Decimal)

    def add(self, row):
        self.calls += row["calls"]
        self.prompt += row["prompt"] or 0
        self.completion += row["completion"] or 0
        if row["spent"] is not None and row["currency"]:
            self.costs[row["currency"]] += row["spent"]

    def tallies(self, other):
        """Add another Tally's figures to this one."""
        self.calls += other.calls
        self.prompt += other.prompt
        self.completion += other.completion
        for currency, cost in other.costs.items():
            self.costs[currency] += cost

    @property
    def tokens(self):
        return self.prompt + self.completion

    def shown(self, name):
        return f"{getattr(self, name):,}"

    @property
    def numbers(self):
        """Calls and tokens written with thousands separators, for the page."""
        return {name: self.shown(name) for name in ("calls", "prompt", "completion", "tokens")}

    @property
    def cost_display(self):
        return " + ".join(format_cost(v, c) for c, v in sorted(self.costs.items())) or "—"


KEY_FIELDS = {"model": "model_key", "deployment": "deployment", "user": "user_id", "group": "user_id"}


def build_report(*, filters):
    """Totals, chart series, breakdown by ``filters.by`` and top users, each summed in the
    database from the rollup (a handful of grouped queries returning few rows each)."""
    records, by = _filtered(filters), filters.by
    total = Tally()
    for row in _grouped(records, []):
        total.add(row)
    per_user = defaultdict(Tally)
    for row in _grouped(records, ["user_id"]):
        per_user[row["user_id"]].add(row)
    names = _usernames(set(per_user))
    groups = _groups_of(set(names))

    def labels(raw):
        if by == "user":
            return [names.get(raw, DELETED_USER)]
        if by == "group":  # a member of two groups counts in both
            return groups.get(raw) or [NO_GROUP]
        return [raw or "(none)"] if by == "deployment" else [raw]

    field = KEY_FIELDS[by]
    per_key = defaultdict(Tally)
    for row in _grouped(records, [field]) if by in ("model", "deployment") else []:
        per_key[row[field]].add(row)
    if by in ("user", "group"):
        for user_id, tally in per_user.items():
            for label in labels(user_id) if by == "group" else [user_id]:
                per_key[label].tallies(tally)
    ranked = sorted(per_key.items(), key=lambda item: (-item[1].tokens, str(item[0])))
    shown = [key for key, _ in ranked[:SERIES]]
    per_day = defaultdict(lambda: defaultdict(int))  # series key → day → tokens
    if by == "group":
        for row in _grouped(records, ["day", "user_id"]):
            for label in labels(row["user_id"]):
                per_day[label if label in shown else "other"][row["day"]] += _tokens(row)
    else:
        wanted = [0 if key is None else key for key in shown]  # the rollup's "no user" is 0
        for row in _grouped(records.filter(**{f"{field}__in": wanted}), ["day", field]):
            per_day[row[field]][row["day"]] += _tokens(row)
        if len(ranked) > SERIES:  # the rest: each day's total less the shown series
            for row in _grouped(records, ["day"]):
                per_day["other"][row["day"]] += _tokens(row)
            for key in shown:
                for day, tokens in per_day[key].items():
                    per_day["other"][day] -= tokens
    def display(key):
        if by == "user":
            return names.get(key, DELETED_USER)
        return (key or "(none)") if by == "deployment" else key

    series = [(display(key), [per_day[key].get(day, 0) for day in filters.days]) for key in shown]
    if "other" in per_day:
        series.append(("other", [per_day["other"].get(day, 0) for day in filters.days]))
    top = sorted(per_user.items(), key=lambda item: -item[1].tokens)[:TOP_USERS]
    return {
        "total": total,
        "series": series,
        "breakdown": [(display(key), tally) for key, tally in ranked],
        "top_users": [(names.get(uid, DELETED_USER), uid, tally) for uid, tally in top],
        "usernames": names,
        "groups": groups,
    }


def _tokens(row):
    return (row["prompt"] or 0) + (row["completion"] or 0)


def _usernames(user_ids):
    ids = [uid for uid in user_ids if uid is not None]
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


def _groups_of(user_ids):
    """{user id: [group names]} for ``user_ids`` (one query)."""
    memberships = get_user_model().groups.through.objects.filter(user_id__in=user_ids)
    result = defaultdict(list)
    for user_id, name in memberships.values_list("user_id", "group__name").order_by("group__name"):
        result[user_id].append(name)
    return result


def csv_rows(rows):
    """The rows of the CSV export, a header first: one per day, user, model, deployment and
    currency (as grouped by ``usage_rollup``), oldest day first."""
    names = _usernames({row["user_id"] for row in rows})
    groups = _groups_of(set(names))
    yield ["day", "user", "groups", "model", "deployment", "calls", "prompt_tokens",
           "completion_tokens", "cost", "currency"]
    ordered = sorted(rows, key=lambda r: (r["day"], names.get(r["user_id"], ""), r["model_key"],
                                          r["deployment"], r["currency"]))
    for row in ordered:
        yield [
            row["day"].isoformat(), names.get(row["user_id"], DELETED_USER),
            ";".join(groups.get(row["user_id"], [])), row["model_key"], row["deployment"],
            row["calls"], row["prompt"] or 0, row["completion"] or 0,
            "" if row["spent"] is None else format(row["spent"].normalize(), "f"), row["currency"],
        ]


def budget_status():
    """[{budget, whom, used, limit, share, resets, over}] for every budget this period, summed
    from the rollup: a user's and a group's own spending; a default's for the user who spent
    the most under it."""
    from django.utils import timezone

    from apps.governance.quotas import period_bounds

    now = timezone.now()
    status = []
    for budget in Budget.objects.select_related("user", "group").order_by("group", "user", "pk"):
        start, resets = period_bounds(budget.period, now)
        rows = UsageDaily.objects.filter(day__gte=start.date())
        if budget.unit == Budget.Unit.TOKENS:
            amount = Sum("prompt_tokens") + Sum("completion_tokens")
        else:
            rows, amount = rows.filter(currency=budget.currency), Sum("cost")
        if budget.user_id:
            used = rows.filter(user_id=budget.user_id).aggregate(v=amount)["v"]
            whom = budget.user.username
        elif budget.group_id:
            members = get_user_model().objects.filter(groups=budget.group_id).values("pk")
            used = rows.filter(user_id__in=members).aggregate(v=amount)["v"]
            whom = f"group {budget.group.name}"
        else:
            most = rows.exclude(user_id=0).values("user_id").annotate(v=amount).order_by("-v").first()
            used = most["v"] if most else 0
            name = _usernames({most["user_id"]}).get(most["user_id"], DELETED_USER) if most else ""
            whom = f"each user (most: {name})" if name else "each user"
        used = used or 0
        share = float(used) / float(budget.limit) if budget.limit else 1.0
        status.append({"budget": budget, "whom": whom, "used": budget.display(used),
                       "limit": budget.limit_display, "share": share, "resets": resets,
                       "over": used >= budget.limit})
    return status


PALETTE = ("#3b6fd4", "#d9822b", "#2a9d8f", "#c0392b", "#8e44ad", "#7f8c8d", "#b8860b", "#16a085",
           "#9aa5b1")


def chart(series, *, days, width=900, height=260):
    """A stacked bar chart of tokens per day as SVG parts for the template (no script, no
    style attribute: the page's CSP allows neither): bars with a hover title, axis ticks and
    the legend's colours."""
    left, bottom, top = 64, 28, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(values[i] for _, values in series) for i in range(len(days))]
    peak = max(totals, default=0) or 1
    slot = plot_w / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        y = top + plot_h
        for number, (key, values) in enumerate(series):
            value = values[index]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            bars.append({"x": round(left + index * slot + slot * 0.1, 2), "y": round(y, 2),
                         "w": round(slot * 0.8, 2), "h": round(h, 2),
                         "fill": PALETTE[number % len(PALETTE)],
                         "title": f"{day.isoformat()} · {key}: {value:,} tokens"})
    step = max(1, len(days) // 8)
    ticks = [{"x": round(left + i * slot + slot / 2, 2), "label": days[i].strftime("%m-%d")}
             for i in range(0, len(days), step)]
    levels = [{"y": round(top + plot_h - plot_h * f, 2), "label": f"{int(peak * f):,}"}
              for f in (0, 0.5, 1)]
    legend = [{"key": key, "fill": PALETTE[n % len(PALETTE)]} for n, (key, _) in enumerate(series)]
    return {"width": width, "height": height, "bars": bars, "ticks": ticks, "levels": levels,
            "legend": legend, "left": left, "base": top + plot_h, "right": width - 10,
            "label_y": height - 8}


def group_choices():
    return list(Group.objects.order_by("name").values_list("pk", "name"))
