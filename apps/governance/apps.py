from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "apps.governance"
    label = "governance"
    verbose_name = "Limits and budgets"

    def ready(self):
        from django.core import checks
        from django.db.models.signals import post_migrate

        from apps.governance import signals  # noqa: F401  (connects the receivers)
        from apps.governance.checks import check_limits

        checks.register(check_limits)
        post_migrate.connect(restore_usage_triggers, sender=self)


def restore_usage_triggers(*, using="default", **_):
    """post_migrate on SQLite: a later migration that rebuilds chat_usagerecord (SQLite adds
    some columns by copying the table) drops the triggers that keep governance_usagedaily the
    sum of its rows; put back the ones missing (PostgreSQL keeps them through ALTER TABLE)."""
    import importlib

    from django.db import connections

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    migration = importlib.import_module("apps.governance.migrations.0007_usage_daily_triggers")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'governance_usagedaily'")
        if cursor.fetchone() is None:
            return  # migrated back below the rollup
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'usage_daily_%'")
        present = {row[0] for row in cursor.fetchall()}
        for statement in migration.SQLITE:
            name = statement.split()[2]
            if name not in present:
                cursor.execute(statement)
