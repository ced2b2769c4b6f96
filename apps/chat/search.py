"""Full-text search over one user's conversations: titles and the text of every message of every
branch. One selector, ``search_conversations``, over the vendor's own engine (FTS5 on SQLite,
tsvector + GIN on PostgreSQL; the index and its triggers are in ``search_sql``).

The user's text never reaches the engine's query parser as such: it is cut into words (and
"quoted phrases") here and the engine's query is built from those, so quotes, operators,
brackets or a lone ``-`` can never raise a syntax error.
"""

import re
import unicodedata
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from apps.chat.models import Conversation

MAX_QUERY_CHARS = 200
MAX_TERMS = 12
RESULT_LIMIT = 20
# Rows read from the index before they are grouped by conversation: enough for RESULT_LIMIT
# conversations when a few of them match in many messages.
CANDIDATE_ROWS = 200
# SQLite: the titles and the messages ranked are the newest this many of each that match (FTS5
# has no top-k by rank: bm25 reads every row it ranks, some 20 µs each); older ones are found by
# a rarer word or a phrase.
SQLITE_CANDIDATES = 500
POSTGRES_CANDIDATES = 500
SNIPPET_WORDS = 16
HIT_START, HIT_END = "\x02", "\x03"  # the engines' highlight markers, split out before display

_WORD = re.compile(r"[^\W_]+")
_PIECE = re.compile(r'"([^"]*)"?|(\S+)')


class QueryTooLong(ValueError):
    """The search text is longer than MAX_QUERY_CHARS."""


@dataclass(frozen=True)
class Term:
    words: tuple  # more than one: a phrase, in this order
    prefix: bool = False  # the last word may be the start of a longer one (typing goes on)


@dataclass
class SearchHit:
    conversation: Conversation
    title_match: bool
    message_id: str | None  # the best matching message, None when only the title matched
    snippet: list = field(default_factory=list)  # [(text, is_hit), ...]: escape-free segments


def parse_query(text):
    """The terms of a search text: words, and "quoted phrases"; everything else is ignored.

    The last word is a prefix unless the text ends in a space or a closed quote. Raises
    QueryTooLong over MAX_QUERY_CHARS; more than MAX_TERMS terms keeps the first ones.
    """
    text = text or ""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryTooLong(f"A search is at most {MAX_QUERY_CHARS} characters long.")
    terms = []
    for match in _PIECE.finditer(text):
        quoted, bare = match.group(1), match.group(2)
        if quoted is not None:
            words = tuple(w.lower() for w in _WORD.findall(quoted))
            if words:
                terms.append(Term(words))
        else:
            terms.extend(Term((w.lower(),)) for w in _WORD.findall(bare))
    terms = terms[:MAX_TERMS]
    last_is_open = text and not text[-1].isspace() and not text.rstrip().endswith('"')
    if terms and last_is_open and len(terms[-1].words) == 1:
        terms[-1] = Term(terms[-1].words, prefix=True)
    return terms


def fts5_query(terms, *, owner_id):
    """The FTS5 MATCH expression: the owner's token AND every term in the title or body."""
    parts = []
    for term in terms:
        phrase = '"' + " ".join(term.words) + '"'  # words are letters and digits only
        parts.append(phrase + ("*" if term.prefix else ""))
    return f"owner:u{int(owner_id)} AND {{title body}} : ({' AND '.join(parts)})"


def tsquery_text(terms):
    """The to_tsquery() text: terms joined by &, a phrase's words by <->, a prefix as :*."""
    parts = []
    for term in terms:
        phrase = " <-> ".join(f"'{word}'" for word in term.words)
        parts.append(phrase + (":*" if term.prefix else ""))
    return " & ".join(parts)


def search_conversations(*, user, query, limit=RESULT_LIMIT):
    """The user's conversations matching ``query``, best first: conversations whose title
    matches come first, then by the rank of their best matching message. Each hit names that
    message (to open the conversation at it) and a highlighted snippet. Only ``user``'s own
    conversations are ever read. Raises QueryTooLong."""
    terms = parse_query(query)
    if not terms:
        return []
    engine = _sqlite if connection.vendor == "sqlite" else _postgres
    return engine(user=user, terms=terms, limit=limit)


def _group(rows, limit):
    """(conversation_id, message_id|None, ...) rows, best first → per conversation, in order:
    whether its title matched and its best message row."""
    order, found = [], {}
    for row in rows:
        conversation_id, message_id = str(row[0]), row[1]
        entry = found.get(conversation_id)
        if entry is None:
            if len(order) == limit:
                continue
            entry = found[conversation_id] = {"title": False, "message": None}
            order.append(conversation_id)
        if message_id is None:
            entry["title"] = True
        elif entry["message"] is None:
            entry["message"] = row
    return order, found


def _hits(user, order, found, snippets, title_snippets):
    conversations = Conversation.objects.filter(owner=user, id__in=order, temporary=False).in_bulk()
    hits = []
    for conversation_id in order:
        conversation = conversations.get(_uuid(conversation_id))
        if conversation is None:  # deleted meanwhile
            continue
        entry = found[conversation_id]
        key = entry["message"][1] if entry["message"] else None  # as the engine spells it
        message_id = str(_uuid(str(key))) if key else None
        snippet = snippets.get(key) if key else None
        if snippet is None:
            snippet = title_snippets.get(conversation_id) or [(conversation.display_title, False)]
        hits.append(SearchHit(conversation, entry["title"], message_id, snippet))
    return hits


def _uuid(value):
    return uuid.UUID(value)


def split_marked(text):
    """Text with HIT_START/HIT_END markers → [(text, is_hit), ...] (stray markers dropped)."""
    segments, hit, buffer = [], False, []
    for char in text or "":
        if char in (HIT_START, HIT_END):
            if buffer:
                segments.append(("".join(buffer), hit))
                buffer = []
            hit = char == HIT_START
        else:
            buffer.append(char)
    if buffer:
        segments.append(("".join(buffer), hit))
    return segments


def _hex(value):
    return value[1:]  # "c<hex>", "m<hex>", "t<hex>" → "<hex>"


def _sqlite(*, user, terms, limit):
    """Titles first, then messages: of each, the newest SQLITE_CANDIDATES matches, ranked here.

    FTS5 walks a match in rowid order (newest first, see search_sql) and stops at the limit, so a word found in most messages
    costs no more than that many rows. Its bm25() is not used: it reads every ranked row's
    statistics and counts the owner token's whole doclist for its IDF (some 30 ms for 500
    rows); ``_rank`` scores the same rows from their text in well under a millisecond."""
    owner, expression = fts5_query(terms, owner_id=user.pk).split(" AND ", 1)
    expression = expression.split(" : ", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conv, rowid, title FROM chat_search WHERE chat_search MATCH %s "
            "ORDER BY rowid LIMIT %s",  # newest first: rowids go down
            [f"{owner} AND title : {expression}", SQLITE_CANDIDATES],
        )
        titles = _rank(cursor.fetchall(), terms)[:limit]
        cursor.execute(
            "SELECT conv, rowid, body, msg FROM chat_search WHERE chat_search MATCH %s "
            "ORDER BY rowid LIMIT %s",  # newest first: rowids go down
            [f"{owner} AND body : {expression}", SQLITE_CANDIDATES],
        )
        messages = _rank(cursor.fetchall(), terms)[:CANDIDATE_ROWS]
    rows = [(_hex(conv), None, rowid) for conv, rowid, _ in titles]
    rows += [(_hex(conv), _hex(msg), rowid) for conv, rowid, _, msg in messages]
    order, found = _group(rows, limit)
    bodies = {rowid: body for _, rowid, body, _ in messages}
    snippets = {
        found[c]["message"][1]: highlight(bodies[found[c]["message"][2]], terms)
        for c in order if found[c]["message"]
    }
    hits = _hits(user, order, found, snippets, {})
    for hit in hits:
        if hit.title_match and hit.message_id is None:
            hit.snippet = highlight(hit.conversation.display_title, terms, words=SNIPPET_WORDS * 4)
    return hits


def _rank(rows, terms, *, k1=1.2, b=0.75):
    """``rows`` (newest first, the text third) best first by a BM25-like score of the terms'
    counts in the text (saturating, normalised by length; every term weighs the same, as all
    of them must match anyway); ties keep the newer first."""
    if not rows:
        return []
    needles = [" ".join(term.words) for term in terms]
    lengths = [len(row[2]) or 1 for row in rows]
    average = sum(lengths) / len(lengths)
    scored = []
    for row, length in zip(rows, lengths, strict=True):
        text = row[2].lower()
        norm = k1 * (1 - b + b * length / average)
        score = 0.0
        for needle in needles:
            count = text.count(needle)
            score += count * (k1 + 1) / (count + norm)
        scored.append((-score, row))
    scored.sort(key=lambda pair: pair[0])
    return [row for _, row in scored]


def _fold(word):
    """A word as FTS5's unicode61 tokenizer (remove_diacritics 2) compares it."""
    word = word.lower()
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def highlight(text, terms, *, words=SNIPPET_WORDS):
    """About ``words`` words of ``text`` around its first match of ``terms``, as
    [(text, is_hit), ...] segments: words equal to a term (or starting with a prefix term),
    and phrases word for word, are hits."""
    spans = [(m.start(), m.end(), _fold(m.group())) for m in _WORD.finditer(text or "")]
    hit = [False] * len(spans)
    for term in terms:
        size = len(term.words)
        for i in range(len(spans) - size + 1):
            last_ok = (spans[i + size - 1][2].startswith(term.words[-1]) if term.prefix
                       else spans[i + size - 1][2] == term.words[-1])
            if last_ok and all(spans[i + k][2] == term.words[k] for k in range(size - 1)):
                hit[i:i + size] = [True] * size
    if not spans:
        return [(text or "", False)] if text else []
    first = hit.index(True) if True in hit else 0
    begin = max(0, first - words // 4)
    end = min(len(spans), begin + words)
    start_char = 0 if begin == 0 else spans[begin][0]
    end_char = len(text) if end == len(spans) else spans[end - 1][1]
    segments = [("…", False)] if begin > 0 else []
    cursor = start_char
    for i in range(begin, end):
        if hit[i]:
            if spans[i][0] > cursor:
                segments.append((text[cursor:spans[i][0]], False))
            segments.append((text[spans[i][0]:spans[i][1]], True))
            cursor = spans[i][1]
    if end_char > cursor:
        segments.append((text[cursor:end_char], False))
    if end < len(spans):
        segments.append(("…", False))
    return _merge(segments)


def _merge(segments):
    merged = []
    for text, is_hit in segments:
        if merged and merged[-1][1] == is_hit:
            merged[-1] = (merged[-1][0] + text, is_hit)
        else:
            merged.append((text, is_hit))
    return merged


HEADLINE_OPTIONS = (
    f"StartSel={HIT_START}, StopSel={HIT_END}, MaxWords={SNIPPET_WORDS}, MinWords=6, "
    "ShortWord=2, MaxFragments=1, FragmentDelimiter=…"
)


POSTGRES_RANKED = """
    SELECT conversation_id, message_id FROM (
      SELECT conversation_id, message_id, tsv, q
      FROM chat_search, to_tsquery(chat_search_config(), %s) q
      WHERE owner_id = %s AND message_id IS {} NULL AND tsv @@ q
      ORDER BY id DESC LIMIT %s) newest
    ORDER BY ts_rank(tsv, q) DESC LIMIT %s"""


def _postgres(*, user, terms, limit):
    """Titles first, then messages: of each, the newest POSTGRES_CANDIDATES matches ranked by
    ts_rank. The planner walks the user's newest rows for a common word (stopping at the cap)
    and takes the GIN index for a rare one; ranking every match of a common word would read
    hundreds of thousands of vectors."""
    tsquery = tsquery_text(terms)
    with connection.cursor() as cursor:
        cursor.execute(POSTGRES_RANKED.format(""), [tsquery, user.pk, POSTGRES_CANDIDATES, limit])
        rows = [(str(c), None) for c, _ in cursor.fetchall()]
        cursor.execute(
            POSTGRES_RANKED.format("NOT"), [tsquery, user.pk, POSTGRES_CANDIDATES, CANDIDATE_ROWS]
        )
        rows += [(str(c), str(m)) for c, m in cursor.fetchall()]
        order, found = _group(rows, limit)
        message_ids = [found[c]["message"][1] for c in order if found[c]["message"]]
        title_ids = [c for c in order if found[c]["title"]]
        snippets, title_snippets = {}, {}
        if message_ids:
            cursor.execute(
                "SELECT m.id, ts_headline(chat_search_config(), m.content, q, %s) "
                "FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id, "
                "to_tsquery(chat_search_config(), %s) q "
                "WHERE m.id = ANY(%s::uuid[]) AND c.owner_id = %s",
                [HEADLINE_OPTIONS, tsquery, message_ids, user.pk],
            )
            snippets = {str(i): split_marked(text) for i, text in cursor.fetchall()}
        if title_ids:
            cursor.execute(
                "SELECT id, ts_headline(chat_search_config(), title, q, %s) "
                "FROM chat_conversation, to_tsquery(chat_search_config(), %s) q "
                "WHERE id = ANY(%s::uuid[]) AND owner_id = %s",
                [HEADLINE_OPTIONS, tsquery, title_ids, user.pk],
            )
            title_snippets = {str(i): split_marked(text) for i, text in cursor.fetchall()}
    return _hits(user, order, found, snippets, title_snippets)


# --- the index's language (PostgreSQL) and rebuilding it

_LANGUAGE = re.compile(r"^[a-z_]{1,63}$")


def configured_language():
    return getattr(settings, "SEARCH_LANGUAGE", "simple")


def index_language(*, using="default"):
    """The text-search configuration the PostgreSQL index uses now (None on SQLite)."""
    from django.db import connections

    conn = connections[using]
    if conn.vendor != "postgresql":
        return None
    with conn.cursor() as cursor:
        cursor.execute("SELECT chat_search_config()::text")
        return cursor.fetchone()[0]


def rebuild_index(*, using="default", language=None):
    """Refill the index from the conversations and messages (in one transaction); on PostgreSQL
    first make ``language`` (default SEARCH_LANGUAGE) its text-search configuration.

    Raises ValueError naming the language when PostgreSQL has no such configuration."""
    from django.db import connections, transaction

    from apps.chat import search_sql

    conn = connections[using]
    with transaction.atomic(using=using), conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            language = language or configured_language()
            cursor.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", [language])
            if not _LANGUAGE.match(language) or cursor.fetchone() is None:
                raise ValueError(
                    f"SEARCH_LANGUAGE={language!r} is not a text-search configuration of this "
                    "PostgreSQL (see \\dF in psql: simple, english, german, …)."
                )
            cursor.execute(search_sql.postgres_set_config(language))
        else:
            cursor.execute("DELETE FROM chat_search")
        for sql in search_sql.statements(conn.vendor, "fill"):
            cursor.execute(sql)


def after_migrate(*, using="default", **_):
    """post_migrate: on SQLite, put back the triggers a table rebuild dropped; on PostgreSQL,
    rebuild the index when SEARCH_LANGUAGE changed since it was built."""
    import logging

    from django.db import connections

    from apps.chat import search_sql

    conn = connections[using]
    with conn.cursor() as cursor:
        if conn.vendor == "sqlite":
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'chat_search'")
            if cursor.fetchone() is not None:
                for sql in search_sql.SQLITE_TRIGGERS:
                    cursor.execute(sql)
            return
        if conn.vendor != "postgresql":
            return
        cursor.execute("SELECT to_regproc('chat_search_config') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return  # migrated back below the index
    current = index_language(using=using)
    if current != configured_language():
        logging.getLogger(__name__).warning(
            "Search language changes from %s to %s: rebuilding the search index.",
            current, configured_language(),
        )
        rebuild_index(using=using)
