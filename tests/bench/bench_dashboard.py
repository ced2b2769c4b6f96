"""Usage dashboard benchmark: the admin dashboard's queries over many usage rows.

Run:  .venv/bin/python -m tests.bench.bench_dashboard [--rows 1000000] [--repeat 7]
      (DATABASE_URL=postgres://... to measure on PostgreSQL, the target; a fresh database is
      made there and dropped after)

Seeds ``--rows`` UsageRecords in one INSERT … SELECT in the database (generate_series on
PostgreSQL, a recursive CTE on SQLite), spread over the last 30 days (all inside the default
range: the worst case), 200 users in 10 groups, 6 models on 8 deployments, with costs. Then
times, as the page runs them: the grouped query alone (``usage_rollup``), the whole report
(rollup, totals, series, breakdown, top users, budget status, chart) and the full page through
Django's test client (admin, template), for the default range and a filtered one; and, for
scale, one plain ``count(*)`` of the same range. Prints figures; asserts nothing about time.
"""

import argparse
import os
import statistics
import sys
import time

from tests.bench.bench_budget import setup_django

USERS, GROUPS = 200, 10
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o4-mini", "gpt-5-mini", "small-window")


def seed(rows):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from apps.governance.models import Budget

    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"user{n}") for n in range(USERS)
    )
    groups = Group.objects.bulk_create(Group(name=f"team{n}") for n in range(GROUPS))
    through = get_user_model().groups.through
    through.objects.bulk_create(
        through(user_id=u.pk, group_id=groups[n % GROUPS].pk) for n, u in enumerate(users)
    )
    first = min(u.pk for u in users)
    Budget.objects.create(period=Budget.Period.MONTH, tokens=10**9)
    Budget.objects.create(group=groups[0], period=Budget.Period.DAY, tokens=10**8)
    Budget.objects.create(user=users[0], period=Budget.Period.MONTH, unit=Budget.Unit.CURRENCY, amount=100)
    models = ", ".join(f"'{m}'" for m in MODELS)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"""
                INSERT INTO chat_usagerecord (user_id, purpose, model_key, deployment, prompt_tokens,
                    completion_tokens, reasoning_tokens, cached_tokens, estimated, cost, currency, created)
                SELECT {first} + (mod(n, {USERS})), 'chat', (ARRAY[{models}])[1 + mod(n, 6)],
                    'dep-' || (mod(n, 8)), 200 + mod(n, 1000), 50 + mod(n, 400), 0, 0, mod(n, 50) = 0,
                    CASE WHEN mod(n, 6) = 5 THEN NULL ELSE (200 + mod(n, 1000)) * 0.0000025 END,
                    CASE WHEN mod(n, 6) = 5 THEN '' ELSE 'USD' END,
                    now() - (mod(n, 2592000)) * interval '1 second'
                FROM generate_series(1, %s) AS n
            """, [rows])
            # The rollup took a million upserts at once: vacuum it as autovacuum would in the
            # days such a table takes to fill.
            cursor.execute("VACUUM ANALYZE governance_usagedaily")
            cursor.execute("ANALYZE chat_usagerecord")
        else:
            cursor.execute(f"""
                WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %s)
                INSERT INTO chat_usagerecord (user_id, purpose, model_key, deployment, prompt_tokens,
                    completion_tokens, reasoning_tokens, cached_tokens, estimated, cost, currency, created)
                SELECT {first} + (n % {USERS}), 'chat',
                    CASE n % 6 {' '.join(f"WHEN {i} THEN '{m}'" for i, m in enumerate(MODELS))} END,
                    'dep-' || (n % 8), 200 + n % 1000, 50 + n % 400, 0, 0, n % 50 = 0,
                    CASE WHEN n % 6 = 5 THEN NULL ELSE (200 + n % 1000) * 0.0000025 END,
                    CASE WHEN n % 6 = 5 THEN '' ELSE 'USD' END,
                    strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || (n % 2592000) || ' seconds')
                FROM seq
            """, [rows])
            cursor.execute("ANALYZE")
    return users, groups, time.perf_counter() - started


def timed(fn, count):
    figures = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        figures.append((time.perf_counter() - started) * 1000)
    return statistics.median(figures), max(figures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    drop = setup_django()
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop()


def run(args):
    from datetime import UTC, datetime, timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from apps.chat.models import UsageRecord
    from apps.governance import dashboard

    users, groups, seconds = seed(args.rows)
    total = UsageRecord.objects.count()
    admin = get_user_model().objects.create_superuser("bench-admin", password="x")
    client = Client(SERVER_NAME="localhost")
    client.force_login(admin)

    def report(params):
        filters = dashboard.parse_filters(params)
        built = dashboard.build_report(filters=filters)
        dashboard.chart(built["series"], days=filters.days)
        dashboard.budget_status()
        return built

    since = datetime.now(UTC) - timedelta(days=30)
    default = {}
    filtered = {"group": str(groups[0].pk), "model": "gpt-4o", "by": "user"}
    count_only = timed(lambda: UsageRecord.objects.filter(created__gte=since).count(), args.repeat)
    rollup = timed(lambda: dashboard.usage_rollup(filters=dashboard.parse_filters(default)), args.repeat)
    whole = timed(lambda: report(default), args.repeat)
    narrow = timed(lambda: report(filtered), args.repeat)
    page = timed(lambda: client.get("/admin/governance/usagereport/"), args.repeat)
    csv = timed(lambda: client.get("/admin/governance/usagereport/", {"format": "csv"}), max(args.repeat // 2, 3))
    groups_out = len(dashboard.usage_rollup(filters=dashboard.parse_filters(default)))
    print(f"== Usage dashboard ({connection.vendor}) ==")
    print(f"usage rows: {total:,} (seeded in {seconds:.1f} s, all in the default 30-day range); "
          f"{USERS} users, {GROUPS} groups, {len(MODELS)} models; rollup rows in range: {groups_out:,}")
    print(f"{'':44} {'median ms':>10} {'max ms':>8} {'× count(*)':>11}")
    for name, (median, worst) in (
        ("for scale: count(*) of the raw rows in range", count_only),
        ("all rollup rows of the range (the CSV's)", rollup),
        ("whole report, default range", whole),
        ("whole report, group + model filter", narrow),
        ("dashboard page (admin, template)", page),
        ("CSV export", csv),
    ):
        print(f"{name:44} {median:10.1f} {worst:8.1f} {median / count_only[0]:11.1f}")


if __name__ == "__main__":
    main()
