"""An index on chat_usagerecord (user_id, id) for the budget check's running total
(apps.governance.quotas.tokens_used reads one user's rows after a known id).

Raw SQL in this app rather than a chat migration: the index exists for governance, and the
statement is the same on SQLite and PostgreSQL.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0002_budgets"),
        ("chat", "0002_summaries_usage"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS usage_user_id ON chat_usagerecord (user_id, id)",
            "DROP INDEX IF EXISTS usage_user_id",
        )
    ]
