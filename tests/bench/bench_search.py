"""Search and sidebar benchmark: full-text search over many messages, and the sidebar's first
page with many conversations.

Run:  .venv/bin/python -m tests.bench.bench_search [--messages N] [--queries 20]
      (DATABASE_URL=postgres://... to measure on PostgreSQL in a fresh database; default N is
      1,000,000 there and 100,000 on SQLite)

Seeds N messages of ~40 words each (a 20,000-word vocabulary with Zipf frequencies, so some
words are in most messages and some in a handful) in conversations of 20 messages, over 20
users; the searching user owns a quarter of them. A 21st user has 10,000 conversations for the
sidebar. Then times, per query kind (rare word, common word, two words, phrase, prefix, a title
word, no match): the engine's bare ranked query (upstream alone), Lapis's selector (ranking,
grouping by conversation, snippets, owner check) and the HTTP endpoint through Django. Also
times the sidebar's JSON first page and the whole chat page for the 10,000-conversation user,
and what the index triggers add to one message insert. Prints figures; asserts nothing.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid

from tests.bench.bench_budget import setup_django

WORDS_PER_MESSAGE = 40
MESSAGES_PER_CONVERSATION = 20
USERS = 20
SIDEBAR_CONVERSATIONS = 10_000
TARGET_P95_MS = {"search": 100, "sidebar": 50}


def vocabulary(rng, size=20_000):
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))))
    words = sorted(words)
    rng.shuffle(words)
    weights = [1 / (rank + 1) for rank in range(size)]  # Zipf: word k is k times rarer
    total, cumulative = 0.0, []
    for weight in weights:
        total += weight
        cumulative.append(total)
    return words, cumulative


def message_rows(model, count, conversation_ids, text_of, now):
    """Rows of every concrete column of Message, in field order (defaults where not given)."""
    fields = [f for f in model._meta.concrete_fields]
    columns = [f.column for f in fields]
    for i in range(count):
        values = {
            "id": uuid.uuid4(), "conversation_id": conversation_ids[i // MESSAGES_PER_CONVERSATION],
            "role": "user" if i % 2 == 0 else "assistant", "content": text_of(i),
            "status": "complete", "model_key": "gpt-4o", "created": now, "updated": now,
            "parent_id": None, "client_id": None,
        }
        yield [values[f.attname] if f.attname in values else f.get_default() for f in fields]
    return columns


def seed(args, rng):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from apps.chat.models import Conversation, Message

    words, cumulative = vocabulary(rng)
    users = [get_user_model().objects.create_user(f"user{n}") for n in range(USERS)]
    me = users[0]
    now = timezone.now()
    conversation_count = args.messages // MESSAGES_PER_CONVERSATION
    owners = [me if n % 4 == 0 else users[1 + n % (USERS - 1)] for n in range(conversation_count)]
    started = time.perf_counter()
    conversations = Conversation.objects.bulk_create(
        (Conversation(owner=owner, model_key="gpt-4o",
                      title=" ".join(rng.choices(words, cum_weights=cumulative, k=4)))
         for owner in owners),
        batch_size=5000,
    )
    conversation_ids = [c.id for c in conversations]
    texts = [" ".join(rng.choices(words, cum_weights=cumulative, k=WORDS_PER_MESSAGE))
             for _ in range(min(args.messages, 50_000))]  # reused: generating is the slow part
    text_of = lambda i: texts[i % len(texts)] + f" n{i}"  # noqa: E731  (one unique word each)
    fields = [f.column for f in Message._meta.concrete_fields]
    rows = message_rows(Message, args.messages, conversation_ids, text_of, now)
    if connection.vendor == "postgresql":
        _copy_postgres(connection, fields, rows)
    else:
        _insert_sqlite(connection, fields, rows)
    seeded = time.perf_counter() - started
    sidebar_user = get_user_model().objects.create_user("sidebar")
    Conversation.objects.bulk_create(
        (Conversation(owner=sidebar_user, model_key="gpt-4o", title=f"Conversation {n}")
         for n in range(SIDEBAR_CONVERSATIONS)), batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return me, sidebar_user, words, cumulative, conversations, seeded


def _copy_postgres(connection, fields, rows):
    """COPY without the index triggers, then one rebuild (the same to_tsvector as a trigger)."""
    from apps.chat.search import rebuild_index

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # no triggers: a bulk load
        columns = ", ".join(f'"{c}"' for c in fields)
        with cursor.cursor.copy(f"COPY chat_message ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute("SET session_replication_role = DEFAULT")
    rebuild_index()


def _insert_sqlite(connection, fields, rows):
    """Plain inserts: the triggers index every message as Lapis's own writes do."""
    from django.db import transaction

    columns = ", ".join(f'"{c}"' for c in fields)
    sql = f"INSERT INTO chat_message ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    batch = []
    with transaction.atomic(), connection.cursor() as cursor:
        for row in rows:
            batch.append([v.hex if isinstance(v, uuid.UUID) else v for v in row])
            if len(batch) == 5000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def timed(fn, count):
    figures = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        figures.append((time.perf_counter() - started) * 1000)
    return figures


def ok(response):
    if response.status_code != 200:
        raise SystemExit(f"{response.status_code}: {response.content[:300]!r}")
    return response


def p95(figures):
    ordered = sorted(figures)
    return ordered[min(int(len(ordered) * 0.95), len(ordered) - 1)]


def bare_query(connection, user, query):
    """The engine alone: the same capped, ranked, owner-scoped matches of messages, ids only
    (no titles, no grouping, no snippets, no conversations read)."""
    from apps.chat import search

    terms = search.parse_query(query)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT conv, msg FROM chat_search WHERE chat_search MATCH %s "
                "ORDER BY rowid LIMIT %s",
                [search.fts5_query(terms, owner_id=user.pk).replace("{title body}", "body"),
                 search.SQLITE_CANDIDATES],
            )
        else:
            cursor.execute(
                search.POSTGRES_RANKED.format("NOT"),
                [search.tsquery_text(terms), user.pk, search.POSTGRES_CANDIDATES, 200],
            )
        return cursor.fetchall()


def queries(words, conversations, me, rng):
    """One query per kind, chosen from the vocabulary by frequency rank."""
    title = next(c.title for c in conversations if c.owner_id == me.pk).split()[-1]
    return {
        "common word (rank 3)": words[2],
        "mid word (rank 300)": words[299],
        "rare word (rank 15000)": words[14_999],
        "two words": f"{words[5]} {words[40]}",
        "phrase": f'"{words[0]} {words[1]}"',
        "prefix (3 letters)": words[10][:3],
        "title word": title,
        "no match": "zzzzqqqq",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--queries", type=int, default=20, help="runs of each query kind")
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="lapis-bench-search-"))
    drop = setup_django()
    try:
        from django.db import connection

        if args.messages is None:
            args.messages = 1_000_000 if connection.vendor == "postgresql" else 100_000
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop()


def run(args):
    from django.db import connection
    from django.test import Client

    from apps.chat.search import search_conversations

    rng = random.Random(18)
    me, sidebar_user, words, _, conversations, seeded = seed(args, rng)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_search")
        indexed = cursor.fetchone()[0]
    mine = args.messages // 4
    print(f"== Search ({connection.vendor}) ==")
    print(f"{args.messages:,} messages in {len(conversations):,} conversations of {USERS} users "
          f"({mine:,} messages are the searcher's); {indexed:,} index rows; seeded and indexed "
          f"in {seeded:.1f} s")
    client = Client(HTTP_HOST="localhost")
    client.force_login(me)
    everything = []
    print(f"{'query':<24} {'results':>7} {'engine p95':>11} {'Lapis p95':>10} {'HTTP p95':>9} "
          f"{'HTTP/engine':>11}")
    for kind, query in queries(words, conversations, me, rng).items():
        search_conversations(user=me, query=query)  # warm the caches once
        engine = timed(lambda q=query: bare_query(connection, me, q), args.queries)
        lapis = timed(lambda q=query: search_conversations(user=me, query=q), args.queries)
        http = timed(lambda q=query: ok(client.get("/api/chat/search", {"q": q})), args.queries)
        everything += http
        count = len(search_conversations(user=me, query=query))
        print(f"{kind:<24} {count:>7} {p95(engine):>8.1f} ms {p95(lapis):>7.1f} ms "
              f"{p95(http):>6.1f} ms {p95(http) / max(p95(engine), 0.01):>10.1f}x")
    verdict = "within" if p95(everything) <= TARGET_P95_MS["search"] else "OVER"
    print(f"all search requests: p50 {statistics.median(everything):.1f} ms, p95 "
          f"{p95(everything):.1f} ms ({verdict} the {TARGET_P95_MS['search']} ms target)")

    sidebar_run(sidebar_user, args.queries)
    trigger_cost(conversations[0])


def sidebar_run(user, runs):
    from django.db import connection
    from django.test import Client

    from apps.chat.selectors import list_conversations

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    ok(client.get("/"))
    selector = timed(lambda: list_conversations(user=user), runs * 5)
    api = timed(lambda: ok(client.get("/api/chat/conversations/?page=1")), runs * 5)
    page = timed(lambda: ok(client.get("/")), runs)
    verdict = "within" if p95(api) <= TARGET_P95_MS["sidebar"] else "OVER"
    print(f"== Sidebar ({connection.vendor}), {SIDEBAR_CONVERSATIONS:,} conversations ==")
    print(f"selector (first page) p95 {p95(selector):.2f} ms; JSON first page p95 {p95(api):.1f} ms "
          f"({verdict} the {TARGET_P95_MS['sidebar']} ms target); whole chat page p95 "
          f"{p95(page):.1f} ms; JSON/selector {p95(api) / max(p95(selector), 0.01):.1f}x")


def trigger_cost(conversation):
    """One message insert with the index triggers, and without them (the write Lapis adds)."""
    from django.db import connection, transaction

    from apps.chat.models import Message
    from apps.chat.search_sql import statements

    text = "a fairly ordinary answer of about forty words " * 5

    def insert_many():
        with transaction.atomic():
            Message.objects.bulk_create(
                Message(conversation=conversation, role="assistant", content=text) for _ in range(500)
            )

    with_triggers = statistics.median(timed(insert_many, 5)) / 500
    with connection.cursor() as cursor:
        drop = [s for s in statements(connection.vendor, "drop") if "TRIGGER" in s and "message" in s]
        for sql in drop:
            cursor.execute(sql)
    without = statistics.median(timed(insert_many, 5)) / 500
    print(f"== Index upkeep ({connection.vendor}) ==")
    print(f"one message insert: {with_triggers * 1000:.0f} µs with the index triggers, "
          f"{without * 1000:.0f} µs without ({with_triggers / without:.1f}x); streaming "
          f"checkpoints skip the index, only an answer's final write pays this")


if __name__ == "__main__":
    main()
