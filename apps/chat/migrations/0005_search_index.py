"""The full-text search index (apps/chat/search_sql.py): FTS5 on SQLite, tsvector on PostgreSQL,
kept in step by triggers, filled from the existing conversations."""

from django.conf import settings
from django.db import migrations

from apps.chat import search_sql


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = search_sql.statements(vendor, "create")
    if vendor == "postgresql":  # checked by settings: a configuration name, letters and _
        statements = [*statements, search_sql.postgres_set_config(settings.SEARCH_LANGUAGE)]
    for sql in statements + search_sql.statements(vendor, "fill"):
        schema_editor.execute(sql, params=None)


def drop(apps, schema_editor):
    for sql in search_sql.statements(schema_editor.connection.vendor, "drop"):
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_conversation_folders_pins")]

    operations = [migrations.RunPython(create, drop)]
