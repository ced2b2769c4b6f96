"""Triggers that keep governance_usagedaily the exact sum of chat_usagerecord (see
apps.governance.models.UsageDaily), and the sums of the rows already there.

Triggers rather than Python: every writer is covered (bulk inserts, updates, deletes, the
retention command, a manual fix in SQL) in the row's own transaction, so the rollup cannot
drift from the rows. One statement set per database: PostgreSQL (a PL/pgSQL row trigger) and
SQLite (three triggers; UPSERT needs SQLite 3.24+).
"""

from django.db import migrations

COLUMNS = "day, user_id, model_key, deployment, currency, calls, prompt_tokens, completion_tokens, cost"
KEY = "day, user_id, model_key, deployment, currency"
ADD = """calls = governance_usagedaily.calls + excluded.calls,
    prompt_tokens = governance_usagedaily.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = governance_usagedaily.completion_tokens + excluded.completion_tokens,
    cost = governance_usagedaily.cost + excluded.cost"""


def _subtract(row, day):
    return f"""UPDATE governance_usagedaily SET calls = calls - 1,
        prompt_tokens = prompt_tokens - {row}.prompt_tokens,
        completion_tokens = completion_tokens - {row}.completion_tokens,
        cost = cost - COALESCE({row}.cost, 0)
      WHERE day = {day} AND user_id = COALESCE({row}.user_id, 0) AND model_key = {row}.model_key
        AND deployment = {row}.deployment AND currency = {row}.currency"""


def _add(row, day):
    return f"""INSERT INTO governance_usagedaily ({COLUMNS})
      VALUES ({day}, COALESCE({row}.user_id, 0), {row}.model_key, {row}.deployment, {row}.currency,
              1, {row}.prompt_tokens, {row}.completion_tokens, COALESCE({row}.cost, 0))
      ON CONFLICT ({KEY}) DO UPDATE SET {ADD}"""


PG_DAY = "(({row}.created AT TIME ZONE 'UTC')::date)"
SQLITE_DAY = "substr({row}.created, 1, 10)"

POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION lapis_usage_daily() RETURNS trigger AS $$
    BEGIN
      IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_subtract("OLD", PG_DAY.format(row="OLD"))};
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_add("NEW", PG_DAY.format(row="NEW"))};
      END IF;
      RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER usage_daily AFTER INSERT OR UPDATE OR DELETE ON chat_usagerecord
       FOR EACH ROW EXECUTE FUNCTION lapis_usage_daily()""",
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS usage_daily ON chat_usagerecord",
    "DROP FUNCTION IF EXISTS lapis_usage_daily()",
]
SQLITE = [
    f"""CREATE TRIGGER usage_daily_insert AFTER INSERT ON chat_usagerecord BEGIN
      {_add("NEW", SQLITE_DAY.format(row="NEW"))}; END""",
    f"""CREATE TRIGGER usage_daily_update AFTER UPDATE ON chat_usagerecord BEGIN
      {_subtract("OLD", SQLITE_DAY.format(row="OLD"))};
      {_add("NEW", SQLITE_DAY.format(row="NEW"))}; END""",
    f"""CREATE TRIGGER usage_daily_delete AFTER DELETE ON chat_usagerecord BEGIN
      {_subtract("OLD", SQLITE_DAY.format(row="OLD"))}; END""",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS usage_daily_{op}" for op in ("insert", "update", "delete")]


def backfill_sql(vendor):
    day = (PG_DAY if vendor == "postgresql" else SQLITE_DAY).format(row="u")
    return f"""INSERT INTO governance_usagedaily ({COLUMNS})
      SELECT {day}, COALESCE(u.user_id, 0), u.model_key, u.deployment, u.currency, COUNT(*),
             SUM(u.prompt_tokens), SUM(u.completion_tokens), COALESCE(SUM(u.cost), 0)
      FROM chat_usagerecord u GROUP BY 1, 2, 3, 4, 5"""


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in [backfill_sql(vendor), *(POSTGRES if vendor == "postgresql" else SQLITE)]:
        schema_editor.execute(statement, params=None)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in POSTGRES_DROP if vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement, params=None)
    schema_editor.execute("DELETE FROM governance_usagedaily", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0006_usage_daily"),
        ("chat", "0004_usage_cost"),
    ]

    operations = [migrations.RunPython(install, remove)]
