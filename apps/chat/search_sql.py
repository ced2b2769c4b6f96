"""The full-text index's schema: an FTS5 table on SQLite, a tsvector table on PostgreSQL.

Both are kept in step by database triggers on ``chat_message`` and ``chat_conversation``, so every
write path (the ORM, ``QuerySet.update`` in the answer writer, cascades of a delete) updates the
index without an extra query from Lapis. A streaming answer is indexed at its final write only:
its checkpoints (about one a second) never touch the index.
"""

# --- SQLite: one FTS5 table. ``owner``, ``conv`` and ``msg`` hold one token each ("u12",
# "c<hex>", "m<hex>" for a message, "t<hex>" for the conversation's own row, which holds its
# title, even an empty one), so owner scoping and the triggers' deletes are index lookups too
# (FTS5 has no secondary indexes on UNINDEXED columns).
#
# Rowids go down: each new row takes the smallest rowid less one (the fill numbers the rows
# the same way, by date), so FTS5's fast direction, ascending rowid, walks a match newest first
# and a search can stop after the newest few hundred matches (descending walks are ~10x slower).
#
# The triggers read and write chat_search alone: a trigger that named another Django table would
# make SQLite refuse Django's table rebuilds ("error in trigger …: no such table"), so a message
# row takes its owner from its conversation's row.
SQLITE_CREATE = [
    """CREATE VIRTUAL TABLE chat_search USING fts5(
        owner, conv, msg, title, body, tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS chat_search_message_insert AFTER INSERT ON chat_message
       WHEN new.status != 'streaming' BEGIN
         INSERT INTO chat_search (rowid, owner, conv, msg, title, body)
         SELECT (SELECT coalesce((SELECT rowid FROM chat_search ORDER BY rowid LIMIT 1), 0) - 1),
                owner, conv, 'm' || new.id, '', new.content
         FROM chat_search WHERE chat_search MATCH ('msg:t' || new.conversation_id);
       END""",
    """CREATE TRIGGER IF NOT EXISTS chat_search_message_update
       AFTER UPDATE OF content, status ON chat_message
       WHEN (old.status != 'streaming' OR new.status != 'streaming')
         AND (old.content IS NOT new.content
              OR (old.status = 'streaming') != (new.status = 'streaming')) BEGIN
         DELETE FROM chat_search WHERE rowid IN (
           SELECT rowid FROM chat_search WHERE chat_search MATCH ('msg:m' || old.id));
         INSERT INTO chat_search (rowid, owner, conv, msg, title, body)
         SELECT (SELECT coalesce((SELECT rowid FROM chat_search ORDER BY rowid LIMIT 1), 0) - 1),
                owner, conv, 'm' || new.id, '', new.content
         FROM chat_search WHERE chat_search MATCH ('msg:t' || new.conversation_id)
           AND new.status != 'streaming';
       END""",
    """CREATE TRIGGER IF NOT EXISTS chat_search_message_delete AFTER DELETE ON chat_message
       WHEN old.status != 'streaming' BEGIN
         DELETE FROM chat_search WHERE rowid IN (
           SELECT rowid FROM chat_search WHERE chat_search MATCH ('msg:m' || old.id));
       END""",
    """CREATE TRIGGER IF NOT EXISTS chat_search_title_insert AFTER INSERT ON chat_conversation
       BEGIN
         INSERT INTO chat_search (rowid, owner, conv, msg, title, body)
         VALUES ((SELECT coalesce((SELECT rowid FROM chat_search ORDER BY rowid LIMIT 1), 0) - 1),
                 'u' || new.owner_id, 'c' || new.id, 't' || new.id, new.title, '');
       END""",
    """CREATE TRIGGER IF NOT EXISTS chat_search_title_update
       AFTER UPDATE OF title ON chat_conversation
       WHEN old.title IS NOT new.title BEGIN
         DELETE FROM chat_search WHERE rowid IN (
           SELECT rowid FROM chat_search WHERE chat_search MATCH ('msg:t' || old.id));
         INSERT INTO chat_search (rowid, owner, conv, msg, title, body)
         VALUES ((SELECT coalesce((SELECT rowid FROM chat_search ORDER BY rowid LIMIT 1), 0) - 1),
                 'u' || new.owner_id, 'c' || new.id, 't' || new.id, new.title, '');
       END""",
    # Every row of the conversation: its messages' rows are gone already when the ORM deleted
    # them first, but a raw delete of the conversation must not leave them behind.
    """CREATE TRIGGER IF NOT EXISTS chat_search_conversation_delete
       AFTER DELETE ON chat_conversation BEGIN
         DELETE FROM chat_search WHERE rowid IN (
           SELECT rowid FROM chat_search WHERE chat_search MATCH ('conv:c' || old.id));
       END""",
]
# Django rebuilds a SQLite table to add a column with a default (and for most alterations): the
# copy keeps every row and rowid, but the table's triggers are dropped with the old table, so
# they are created again (IF NOT EXISTS) after every migrate; see ``search.after_migrate``.
SQLITE_TRIGGERS = [sql for sql in SQLITE_CREATE if "CREATE TRIGGER" in sql]
SQLITE_FILL = [
    """INSERT INTO chat_search (rowid, owner, conv, msg, title, body)
       SELECT -row_number() OVER (ORDER BY created, kind), owner, conv, msg, title, body FROM (
         SELECT created, 0 AS kind, 'u' || owner_id AS owner, 'c' || id AS conv,
                't' || id AS msg, title, '' AS body
         FROM chat_conversation
         UNION ALL
         SELECT m.created, 1, 'u' || c.owner_id, 'c' || c.id, 'm' || m.id, '', m.content
         FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id
         WHERE m.status != 'streaming')""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS chat_search_message_insert",
    "DROP TRIGGER IF EXISTS chat_search_message_update",
    "DROP TRIGGER IF EXISTS chat_search_message_delete",
    "DROP TRIGGER IF EXISTS chat_search_title_insert",
    "DROP TRIGGER IF EXISTS chat_search_title_update",
    "DROP TRIGGER IF EXISTS chat_search_conversation_delete",
    "DROP TABLE IF EXISTS chat_search",
]

# --- PostgreSQL: one row per message (message_id set) or title (message_id NULL) with its
# tsvector; the text itself stays in chat_message/chat_conversation (ts_headline reads it there
# for the few rows shown). ``chat_search_config()`` names the text-search configuration: the
# triggers and the queries both use it, so stored vectors and queries always agree
# (``rebuild_search_index`` changes it to SEARCH_LANGUAGE and recomputes the vectors).
POSTGRES_CREATE = [
    """DO $$ BEGIN
         CREATE EXTENSION IF NOT EXISTS btree_gin;
       EXCEPTION WHEN insufficient_privilege THEN
         RAISE NOTICE 'btree_gin unavailable: search uses a GIN index on the vectors alone';
       END $$""",
    """CREATE FUNCTION chat_search_config() RETURNS regconfig
       LANGUAGE sql IMMUTABLE AS $$ SELECT 'simple'::regconfig $$""",
    """CREATE TABLE chat_search (
         id bigserial PRIMARY KEY,
         owner_id integer NOT NULL,
         conversation_id uuid NOT NULL,
         message_id uuid,
         tsv tsvector NOT NULL)""",
    "CREATE UNIQUE INDEX chat_search_message ON chat_search (message_id) WHERE message_id IS NOT NULL",
    "CREATE INDEX chat_search_conversation ON chat_search (conversation_id)",
    # A user's newest rows first: a common word's newest matches without reading all of them.
    "CREATE INDEX chat_search_owner_recent ON chat_search (owner_id, id)",
    """CREATE INDEX chat_search_owner_titles ON chat_search (owner_id, id)
       WHERE message_id IS NULL""",
    """DO $$ BEGIN
         IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gin') THEN
           CREATE INDEX chat_search_tsv ON chat_search USING gin (owner_id, tsv);
         ELSE
           CREATE INDEX chat_search_tsv ON chat_search USING gin (tsv);
           CREATE INDEX chat_search_owner ON chat_search (owner_id);
         END IF;
       END $$""",
    """CREATE FUNCTION chat_search_message_sync() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP <> 'INSERT' THEN
           DELETE FROM chat_search WHERE message_id = OLD.id;
         END IF;
         IF TG_OP <> 'DELETE' AND NEW.status <> 'streaming' THEN
           INSERT INTO chat_search (owner_id, conversation_id, message_id, tsv)
           SELECT c.owner_id, NEW.conversation_id, NEW.id,
                  to_tsvector(chat_search_config(), NEW.content)
           FROM chat_conversation c WHERE c.id = NEW.conversation_id;
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE TRIGGER chat_search_message_insert AFTER INSERT ON chat_message FOR EACH ROW
       WHEN (NEW.status <> 'streaming') EXECUTE FUNCTION chat_search_message_sync()""",
    """CREATE OR REPLACE TRIGGER chat_search_message_update AFTER UPDATE OF content, status ON chat_message
       FOR EACH ROW WHEN ((OLD.status <> 'streaming' OR NEW.status <> 'streaming')
         AND (OLD.content IS DISTINCT FROM NEW.content
              OR (OLD.status = 'streaming') <> (NEW.status = 'streaming')))
       EXECUTE FUNCTION chat_search_message_sync()""",
    """CREATE OR REPLACE TRIGGER chat_search_message_delete AFTER DELETE ON chat_message FOR EACH ROW
       WHEN (OLD.status <> 'streaming') EXECUTE FUNCTION chat_search_message_sync()""",
    """CREATE FUNCTION chat_search_title_sync() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'DELETE' THEN
           DELETE FROM chat_search WHERE conversation_id = OLD.id;
           RETURN NULL;
         END IF;
         IF TG_OP = 'UPDATE' THEN
           DELETE FROM chat_search WHERE conversation_id = OLD.id AND message_id IS NULL;
         END IF;
         IF NEW.title <> '' THEN
           INSERT INTO chat_search (owner_id, conversation_id, message_id, tsv)
           VALUES (NEW.owner_id, NEW.id, NULL,
                   setweight(to_tsvector(chat_search_config(), NEW.title), 'A'));
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE TRIGGER chat_search_title_insert AFTER INSERT ON chat_conversation FOR EACH ROW
       WHEN (NEW.title <> '') EXECUTE FUNCTION chat_search_title_sync()""",
    """CREATE OR REPLACE TRIGGER chat_search_title_update AFTER UPDATE OF title ON chat_conversation
       FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title)
       EXECUTE FUNCTION chat_search_title_sync()""",
    """CREATE OR REPLACE TRIGGER chat_search_conversation_delete AFTER DELETE ON chat_conversation
       FOR EACH ROW EXECUTE FUNCTION chat_search_title_sync()""",
    # Django's flush (tests) truncates the tables it knows: row triggers do not fire then.
    """CREATE FUNCTION chat_search_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN TRUNCATE chat_search; RETURN NULL; END $$""",
    """CREATE OR REPLACE TRIGGER chat_search_message_truncate AFTER TRUNCATE ON chat_message
       FOR EACH STATEMENT EXECUTE FUNCTION chat_search_truncate()""",
    """CREATE OR REPLACE TRIGGER chat_search_conversation_truncate AFTER TRUNCATE ON chat_conversation
       FOR EACH STATEMENT EXECUTE FUNCTION chat_search_truncate()""",
]
POSTGRES_FILL = [
    "TRUNCATE chat_search",
    """INSERT INTO chat_search (owner_id, conversation_id, message_id, tsv)
       SELECT owner_id, id, NULL, setweight(to_tsvector(chat_search_config(), title), 'A')
       FROM chat_conversation WHERE title <> ''""",
    """INSERT INTO chat_search (owner_id, conversation_id, message_id, tsv)
       SELECT c.owner_id, m.conversation_id, m.id, to_tsvector(chat_search_config(), m.content)
       FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id
       WHERE m.status <> 'streaming'""",
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS chat_search_message_insert ON chat_message",
    "DROP TRIGGER IF EXISTS chat_search_message_update ON chat_message",
    "DROP TRIGGER IF EXISTS chat_search_message_delete ON chat_message",
    "DROP TRIGGER IF EXISTS chat_search_message_truncate ON chat_message",
    "DROP TRIGGER IF EXISTS chat_search_title_insert ON chat_conversation",
    "DROP TRIGGER IF EXISTS chat_search_title_update ON chat_conversation",
    "DROP TRIGGER IF EXISTS chat_search_conversation_delete ON chat_conversation",
    "DROP TRIGGER IF EXISTS chat_search_conversation_truncate ON chat_conversation",
    "DROP FUNCTION IF EXISTS chat_search_message_sync()",
    "DROP FUNCTION IF EXISTS chat_search_title_sync()",
    "DROP FUNCTION IF EXISTS chat_search_truncate()",
    "DROP TABLE IF EXISTS chat_search",
    "DROP FUNCTION IF EXISTS chat_search_config()",
]


def postgres_set_config(language):
    """The statement that makes ``language`` (checked by the caller) the search configuration."""
    return (
        "CREATE OR REPLACE FUNCTION chat_search_config() RETURNS regconfig LANGUAGE sql "
        f"IMMUTABLE AS $$ SELECT '{language}'::regconfig $$"
    )


def statements(vendor, which):
    """The statements of ``which`` ("create", "fill", "drop") for a database vendor."""
    table = {
        "sqlite": {"create": SQLITE_CREATE, "fill": SQLITE_FILL, "drop": SQLITE_DROP},
        "postgresql": {"create": POSTGRES_CREATE, "fill": POSTGRES_FILL, "drop": POSTGRES_DROP},
    }
    return table.get(vendor, {}).get(which, [])
