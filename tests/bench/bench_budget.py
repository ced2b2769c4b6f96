"""Budget check benchmark: what ``check_budget`` costs per answer with many usage rows.

Run:  .venv/bin/python -m tests.bench.bench_budget [--rows 10000] [--checks 300]
      (DATABASE_URL=postgres://... to measure on PostgreSQL; a fresh database is made there)

Seeds ``--rows`` UsageRecords this month for one user (plus as many for 19 team-mates and for
the previous month), with three budgets that apply to that user (own, group, default), then
times ``check_budget`` and, for scale, one primary-key lookup of a Message. Prints figures;
asserts nothing about time.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid


def setup_django():
    os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="lapis-bench-budget-"))
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        from tests.live import _postgres_admin

        name = "lapis_bench_" + uuid.uuid4().hex[:8]
        _postgres_admin(url, f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
        drop = lambda: _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # noqa: E731
    else:
        drop = lambda: None  # noqa: E731  (a temporary SQLite file)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return drop


def seed(rows):
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from apps.chat.models import Conversation, Message, Purpose, UsageRecord
    from apps.governance.models import Budget

    users = [get_user_model().objects.create_user(f"user{n}") for n in range(20)]
    team = Group.objects.create(name="team")
    team.user_set.add(*users)
    me = users[0]
    last_month = timezone.now() - timedelta(days=40)
    # Last month's rows first: ids grow with time, as they do when Lapis writes them.
    old = UsageRecord.objects.bulk_create(
        UsageRecord(user=me, purpose=Purpose.CHAT, model_key="gpt-4o") for _ in range(rows)
    )
    UsageRecord.objects.filter(pk__in=[r.pk for r in old]).update(created=last_month)
    for user in users:
        per_user = rows if user is me else rows // 19
        UsageRecord.objects.bulk_create(
            UsageRecord(user=user, purpose=Purpose.CHAT, model_key="gpt-4o", prompt_tokens=10,
                        completion_tokens=5)
            for _ in range(per_user)
        )
    Budget.objects.create(user=me, period=Budget.Period.MONTH, tokens=10**12)
    Budget.objects.create(group=team, period=Budget.Period.DAY, tokens=10**12)
    Budget.objects.create(period=Budget.Period.MONTH, tokens=10**12)
    conversation = Conversation.objects.create(owner=me, model_key="gpt-4o")
    message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="x")
    return me, message


def timed(fn, count):
    figures = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        figures.append((time.perf_counter() - started) * 1000)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=300)
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
    from django.db import connection

    from apps.chat.models import Message
    from apps.governance.quotas import check_budget

    me, message = seed(args.rows)
    total = __import__("apps.chat.models", fromlist=["UsageRecord"]).UsageRecord.objects.count()
    from django.core.cache import cache

    def cold():
        cache.clear()  # every check sums all the rows again (the first check of a period)
        check_budget(user=me)

    full = timed(cold, max(args.checks // 10, 5))
    check = timed(lambda: check_budget(user=me), args.checks)
    lookup = timed(lambda: Message.objects.filter(pk=message.pk).exists(), args.checks)
    print(f"== Budget check ({connection.vendor}) ==")
    print(f"usage rows: {total:,} ({args.rows:,} this month for the checked user); 3 budgets apply")
    print(f"check_budget, full sum (first check, or every 60 s): median {statistics.median(full):.2f} ms")
    print(f"check_budget, running total (the usual check): median {statistics.median(check):.2f} ms, p95 "
          f"{sorted(check)[int(len(check) * 0.95)]:.2f} ms over {args.checks} checks")
    print(f"one primary-key lookup: median {statistics.median(lookup):.2f} ms; "
          f"ratio check/lookup {statistics.median(check) / statistics.median(lookup):.1f}")


if __name__ == "__main__":
    main()
