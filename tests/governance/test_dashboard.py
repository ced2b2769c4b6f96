"""The admin usage dashboard: totals, a chart over time and the breakdown by user, group, model
and deployment from the usage rows, top users, budget status, filters and the CSV export."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from apps.chat.models import Purpose, UsageRecord
from apps.governance.models import Budget

pytestmark = pytest.mark.django_db
URL = "/admin/governance/usagereport/"


def record(user, *, days_ago, model="gpt-4o", deployment="gpt-4o", prompt=100, completion=50,
           cost="0.00075", currency="USD"):
    row = UsageRecord.objects.create(
        user=user, purpose=Purpose.CHAT, model_key=model, deployment=deployment,
        prompt_tokens=prompt, completion_tokens=completion,
        cost=None if cost is None else Decimal(cost), currency=currency if cost is not None else "",
    )
    created = datetime.now(UTC).replace(hour=12) - timedelta(days=days_ago)
    UsageRecord.objects.filter(pk=row.pk).update(created=created)
    return created.date()


@pytest.fixture
def seeded():
    users = get_user_model().objects
    alice, bob, carol = (users.create_user(name) for name in ("alice", "bob", "=carol"))
    team = Group.objects.create(name="team")
    team.user_set.add(alice, bob)
    record(alice, days_ago=0)
    record(alice, days_ago=1, model="gpt-4o-mini", deployment="mini-eu", prompt=1000, completion=0, cost="0.00015")
    record(bob, days_ago=1, model="small-window", deployment="small", prompt=10, completion=10, cost=None)
    record(carol, days_ago=2, prompt=300, completion=100, cost="0.00175")
    record(alice, days_ago=45, prompt=10**6, completion=0, cost="2.5")  # outside the default range
    Budget.objects.create(user=alice, period=Budget.Period.MONTH, unit=Budget.Unit.CURRENCY, amount=Decimal("0.01"))
    Budget.objects.create(group=team, period=Budget.Period.DAY, tokens=100_000)
    return alice, bob, carol, team


def test_staff_see_totals_chart_breakdown_top_users_and_budgets(admin_client, seeded):
    response = admin_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    report = response.context["report"]
    assert report["total"].tokens == 150 + 1000 + 20 + 400 and report["total"].calls == 4
    assert report["total"].costs == {"USD": Decimal("0.00075") + Decimal("0.00015") + Decimal("0.00175")}
    assert '<svg class="lapis-usage-chart"' in page and page.count('data-testid="usage-bar"') == 4
    assert dict((k, t.tokens) for k, t in report["breakdown"]) == {"gpt-4o": 550, "gpt-4o-mini": 1000, "small-window": 20}
    assert [name for name, _, _ in report["top_users"]] == ["alice", "=carol", "bob"]
    budgets = {b["whom"]: b for b in response.context["budgets"]}
    assert budgets["alice"]["used"] == "$0.0009" and budgets["alice"]["limit"] == "$0.01"
    assert budgets["group team"]["used"] == "150 tokens" and budgets["group team"]["limit"] == "100,000 tokens"

    by_group = admin_client.get(URL, {"by": "group"}).context["report"]
    assert dict((k, t.tokens) for k, t in by_group["breakdown"]) == {"team": 1170, "(no group)": 400}
    by_user = admin_client.get(URL, {"by": "user"}).context["report"]
    assert dict((k, t.tokens) for k, t in by_user["breakdown"]) == {"alice": 1150, "=carol": 400, "bob": 20}
    assert {name: sum(values) for name, values in by_user["series"]} == {"alice": 1150, "=carol": 400, "bob": 20}
    by_deployment = admin_client.get(URL, {"by": "deployment"}).context["report"]
    assert {k for k, _ in by_deployment["breakdown"]} == {"gpt-4o", "mini-eu", "small"}


def test_filters_narrow_the_rows_and_bad_values_say_what_and_where(admin_client, seeded):
    alice, _, _, team = seeded
    only = admin_client.get(URL, {"user": "alice", "model": "gpt-4o"}).context["report"]
    assert only["total"].tokens == 150
    wide = admin_client.get(URL, {"start": (datetime.now(UTC) - timedelta(days=60)).date().isoformat(),
                                  "group": team.pk}).context["report"]
    assert wide["total"].tokens == 150 + 1000 + 20 + 10**6
    response = admin_client.get(URL, {"start": "yesterday", "by": "colour", "user": "nobody"})
    errors = response.context["filters"].errors
    assert any(e.startswith("start: 'yesterday' is not a date") for e in errors)
    assert any(e.startswith("by: 'colour'") for e in errors)
    assert "user: nobody is called 'nobody'." in errors
    assert 'data-testid="usage-filter-errors"' in response.content.decode()


def test_the_csv_export_has_one_row_per_day_user_model_and_deployment(admin_client, seeded):
    response = admin_client.get(URL, {"format": "csv", "by": "user"})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="lapis-usage-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["day", "user", "groups", "model", "deployment", "calls", "prompt_tokens",
                       "completion_tokens", "cost", "currency"]
    today = datetime.now(UTC).date()
    body = {tuple(r[1:]) : r[0] for r in rows[1:]}
    assert len(rows) == 5
    assert body[("alice", "team", "gpt-4o", "gpt-4o", "1", "100", "50", "0.00075", "USD")] == today.isoformat()
    assert ("bob", "team", "small-window", "small", "1", "10", "10", "", "") in body  # no price: no cost
    # A username that a spreadsheet would run as a formula is written as text.
    assert ("'=carol", "", "gpt-4o", "gpt-4o", "1", "300", "100", "0.00175", "USD") in body
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])
    from apps.audit.models import AuditEntry

    (entry,) = AuditEntry.objects.filter(action=AuditEntry.Action.ADMIN_EXPORT)
    assert entry.changes["rows"] == 4 and "usage dashboard" in entry.summary


def test_only_staff_reach_the_dashboard(seeded):
    alice = seeded[0]
    client = Client()
    assert client.get(URL).status_code == 302  # not signed in: the admin's sign-in page
    client.force_login(alice)
    assert client.get(URL).status_code in (302, 403)
    assert client.get(URL, {"format": "csv"}).status_code in (302, 403)
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403  # staff without the dashboard's view permission


def test_the_daily_rollup_stays_the_exact_sum_of_the_usage_rows(seeded):
    from django.db.models import Count, Sum

    from apps.governance.models import UsageDaily

    alice, bob, _, _ = seeded

    def rollup():
        return {
            # SQLite sums decimals as floats: equal to 10 places
            (r["day"], r["user_id"], r["model_key"], r["currency"]): (r["calls"], r["tokens"], round(r["cost"], 10))
            for r in UsageDaily.objects.filter(calls__gt=0).values("day", "user_id", "model_key", "currency")
            .annotate(calls=Sum("calls"), tokens=Sum("prompt_tokens") + Sum("completion_tokens"), cost=Sum("cost"))
        }

    def from_rows():
        result = {}
        for r in UsageRecord.objects.values_list("created", "user_id", "model_key", "currency", "prompt_tokens",
                                                 "completion_tokens", "cost"):
            key = (r[0].astimezone(UTC).date(), r[1] or 0, r[2], r[3])
            calls, tokens, cost = result.get(key, (0, 0, Decimal(0)))
            result[key] = (calls + 1, tokens + r[4] + r[5], round(cost + (r[6] or 0), 10))
        return result

    assert rollup() == from_rows() and UsageRecord.objects.aggregate(n=Count("id"))["n"] == 5
    UsageRecord.objects.filter(user=alice, model_key="gpt-4o-mini").update(model_key="gpt-4.1", prompt_tokens=7)
    UsageRecord.objects.filter(user=bob).delete()
    alice.delete()  # her rows stay, with no user: the rollup keeps her id's days
    assert {k[1] for k in from_rows()} == {0, seeded[2].pk}
    assert sum(v[0] for v in rollup().values()) == UsageRecord.objects.count() == 4
    assert rollup() == from_rows()
    assert sum(v[1] for v in rollup().values()) == sum(v[1] for v in from_rows().values())


@pytest.mark.skipif("os.environ.get('DATABASE_URL')", reason="SQLite rebuilds tables; PostgreSQL keeps triggers")
def test_a_table_rebuild_that_dropped_the_rollup_triggers_gets_them_back_after_migrate(db):
    from django.db import connection

    from apps.governance.apps import restore_usage_triggers

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER usage_daily_insert")
    restore_usage_triggers(using="default")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'usage_daily_%'")
        assert {row[0] for row in cursor.fetchall()} == {"usage_daily_insert", "usage_daily_update", "usage_daily_delete"}
    restore_usage_triggers(using="default")  # nothing missing: nothing created twice
