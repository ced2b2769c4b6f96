"""Full-text search over one's own conversations (apps/chat/search.py), on the profile the tests
run on (FTS5 on SQLite, tsvector + GIN on PostgreSQL): answers and other branches are found,
titles rank first, other users' conversations never show, any query text is safe, and the index
follows every write (streamed answers, renames, edits, deletes)."""

import re

import pytest
from django.core.management import call_command
from django.db import connection

from apps.chat import search
from apps.chat.models import Conversation, Message
from tests.chat.conftest import ado

NASTY_QUERIES = [
    '"', '""', '"""', "'", "''", "AND", "OR", "NOT", "a AND", "OR b", "NOT NOT", "NEAR(a b)",
    "NEAR(", "*", "**", "a*", "*a", "^a", "a:b", "title:x", "body:x", "owner:u1", "{title}: x",
    "-x", "--", "(", ")", "())(", "a & b", "a | b", "!a", "a <-> b", "'a':*", "a:*", "\\", "\\\"",
    "%", "_", "a_b", "%_%", ";", "; DROP TABLE chat_message; --", "\x00", "é", "日本語", "🙂",
    "x" * 200, " ".join(["w"] * 60), '"unclosed phrase', 'mid"quote', "a'b", "$$", "$1",
]


def hits(client, query):
    response = client.get("/api/chat/search", {"q": query})
    assert response.status_code == 200, (query, response.content)
    return response.json()["results"]


def add_conversation(user, *, title="", texts=()):
    """A conversation with a chain of complete messages (user, assistant, user, …)."""
    conversation = Conversation.objects.create(owner=user, model_key="gpt-4o", title=title)
    parent = None
    for i, text in enumerate(texts):
        parent = Message.objects.create(
            conversation=conversation, parent=parent, content=text,
            role=Message.Role.USER if i % 2 == 0 else Message.Role.ASSISTANT,
        )
    return conversation




@pytest.mark.django_db(transaction=True)
async def test_finds_words_of_streamed_answers_and_of_other_branches(chat_config, user_a, open_socket):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "s1", "text": "Tell me about quokkas", "model": "gpt-4o"})
    first = await socket.created_answer()
    await socket.done(first["id"])
    await socket.send({"type": "regenerate", "message_id": first["id"], "client_id": "s2"})
    second = await socket.created_answer()
    await socket.done(second["id"])
    await socket.send({"type": "edit", "message_id": first["parent_id"], "text": "And platypus facts?", "client_id": "s3"})
    third = await socket.created_answer()
    await socket.done(third["id"])
    conversation_id = first["conversation_id"]
    client = user_a[1]

    # The question of the first branch: no longer on the current branch (the edit is).
    found = await ado(hits, client, "quokkas")
    assert [h["conversation_id"] for h in found] == [conversation_id]
    assert found[0]["message_id"] == first["parent_id"]
    assert any(s["hit"] and s["text"].lower() == "quokkas" for s in found[0]["snippet"])
    # A word only the first answer has (it was streamed: indexed at its final write).
    answer = await Message.objects.aget(id=first["id"])
    question_words = {"tell", "me", "about", "quokkas", "and", "platypus", "facts"}
    words = sorted({w.lower() for w in re.findall(r"[^\W_]{5,}", answer.content)} - question_words)
    assert words, answer.content
    found = await ado(hits, client, f'"{words[0]}"')
    assert [h["conversation_id"] for h in found] == [conversation_id]
    matching = Message.objects.filter(conversation_id=conversation_id, content__icontains=words[0])
    assert found[0]["message_id"] in {str(m.id) async for m in matching}
    assert (await ado(hits, client, "platypus"))[0]["message_id"] == third["parent_id"]


@pytest.mark.django_db
def test_title_matches_rank_first_and_snippets_mark_the_words(user_a):
    user, client = user_a
    by_title = add_conversation(user, title="Budget review", texts=["numbers for the quarter", "fine"])
    by_text = add_conversation(user, title="Misc", texts=["budget budget budget, the budget", "ok budget"])
    add_conversation(user, title="Unrelated", texts=["nothing here"])
    found = hits(client, "budget")
    assert [h["conversation_id"] for h in found] == [str(by_title.id), str(by_text.id)]
    assert found[0]["title_match"] and not found[1]["title_match"]
    assert found[0]["message_id"] is None  # only its title matched
    assert [s["text"] for s in found[0]["snippet"] if s["hit"]] == ["Budget"]
    assert found[1]["message_id"] in {str(m.id) for m in by_text.messages.all()}
    assert all(s["text"].lower() == "budget" for s in found[1]["snippet"] if s["hit"])
    # Prefix while typing, phrases in quotes, all words required.
    assert [h["conversation_id"] for h in hits(client, "budg")] == [str(by_title.id), str(by_text.id)]
    assert [h["conversation_id"] for h in hits(client, '"the budget"')] == [str(by_text.id)]
    assert hits(client, "budget nothing") == []
    assert hits(client, '"quarter numbers"') == []
    assert [h["conversation_id"] for h in hits(client, "quarter numbers")] == [str(by_title.id)]


@pytest.mark.django_db
def test_other_users_conversations_never_show(user_a, user_b):
    alice, alice_client = user_a
    bob, bob_client = user_b
    add_conversation(bob, title="Bob's secret ocelot", texts=["ocelot plans", "ocelot answer"])
    mine = add_conversation(alice, title="", texts=["an ocelot too"])
    assert [h["conversation_id"] for h in hits(alice_client, "ocelot")] == [str(mine.id)]
    assert [h["title"] for h in hits(bob_client, "ocelot")] == ["Bob's secret ocelot"]
    # The owner is part of the engine's query, not something a query can name.
    assert [h["conversation_id"] for h in hits(alice_client, f"owner:u{bob.pk} ocelot")] == []
    assert hits(alice_client, f"u{bob.pk}") == []


@pytest.mark.django_db
def test_quotes_and_operators_never_raise(user_a):
    user, client = user_a
    add_conversation(user, title="AND OR NOT", texts=["a_b mid quote a'b x near", "é 日本語 🙂"])
    for query in NASTY_QUERIES:
        hits(client, query)
    assert hits(client, "near")  # an operator word is an ordinary word
    assert hits(client, "日本語")
    too_long = client.get("/api/chat/search", {"q": "x" * 201})
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "q: A search is at most 200 characters long."
    assert hits(client, "") == [] and hits(client, '" ( ) *') == []


@pytest.mark.django_db
def test_index_follows_renames_edits_deletes_and_final_writes(user_a):
    user, client = user_a
    conversation = add_conversation(user, title="Capybara notes", texts=["question"])
    assert hits(client, "capybara")
    client.post(f"/api/chat/conversations/{conversation.id}/rename", {"title": "Wombat notes"}, content_type="application/json")
    assert hits(client, "capybara") == [] and hits(client, "wombat")
    # A streaming answer: its checkpoints are not indexed, its final write is.
    answer = Message.objects.create(conversation=conversation, role="assistant", status="streaming", content="")
    Message.objects.filter(id=answer.id).update(content="halfway through the tapir")
    assert hits(client, "tapir") == []
    Message.objects.filter(id=answer.id).update(content="the whole tapir story", status="complete")
    assert hits(client, "tapir")[0]["message_id"] == str(answer.id)
    Message.objects.filter(id=answer.id).update(content="rewritten about a lemur")
    assert hits(client, "tapir") == [] and hits(client, "lemur")[0]["message_id"] == str(answer.id)
    # Archived conversations are still found (and say so).
    client.post(f"/api/chat/conversations/{conversation.id}/archive", {"archived": True}, content_type="application/json")
    assert hits(client, "lemur")[0]["archived"] is True
    client.post(f"/api/chat/conversations/{conversation.id}/delete", {}, content_type="application/json")
    assert hits(client, "lemur") == [] and hits(client, "wombat") == []
    assert _index_rows() == 0


def _index_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_search")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_rebuild_command_refills_the_index(user_a):
    user, client = user_a
    add_conversation(user, title="Narwhal", texts=["a narwhal tusk", "long teeth"])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM chat_search")
    assert hits(client, "narwhal") == []
    call_command("rebuild_search_index", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert len(hits(client, "narwhal")) == 1
    assert hits(client, "teeth")[0]["message_id"]
    assert _index_rows() == 3  # the conversation's row (its title) and its two messages


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's text-search configurations")
def test_postgres_language_is_configurable(user_a, settings):
    user, client = user_a
    add_conversation(user, texts=["she runs every morning"])
    assert search.index_language() == "simple"
    assert hits(client, '"running"') == []
    try:
        search.rebuild_index(language="english")
        assert search.index_language() == "english"
        assert len(hits(client, '"running"')) == 1  # both stemmed to "run"
        with pytest.raises(ValueError, match="SEARCH_LANGUAGE='klingon' is not a text-search"):
            search.rebuild_index(language="klingon")
    finally:
        search.rebuild_index(language="simple")
    settings.SEARCH_LANGUAGE = "english"
    search.after_migrate()  # what `migrate` does when the setting changed
    try:
        assert search.index_language() == "english"
    finally:
        search.rebuild_index(language="simple")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite rebuilds tables to alter them")
def test_sqlite_table_rebuilds_work_and_get_their_triggers_back(user_a):
    """Django rebuilds a table to add a column with a default: the triggers must not stop it,
    and the next migrate puts back those that went with the old table."""
    user, client = user_a
    conversation = add_conversation(user, title="Okapi", texts=["hello"])
    try:
        with connection.schema_editor() as editor:
            editor._remake_table(Conversation)
            editor._remake_table(Message)
        assert len(hits(client, "okapi")) == 1  # the rows survive the copy …
        Message.objects.create(conversation=conversation, role="user", content="zorilla")
        assert hits(client, "zorilla") == []  # … the rebuilt table's triggers do not
    finally:
        search.after_migrate()
    Message.objects.create(conversation=conversation, role="user", content="zorilla again")
    conversation.title = "Okapi and zorilla"
    conversation.save()
    found = hits(client, "zorilla")
    assert len(found) == 1 and found[0]["title_match"]


def test_parse_query_builds_terms_from_words_only():
    parse = search.parse_query
    assert parse('budget "next year" pla') == [
        search.Term(("budget",)), search.Term(("next", "year")), search.Term(("pla",), prefix=True)
    ]
    assert parse("done ") == [search.Term(("done",))]
    assert parse('a:b OR "x') == [
        search.Term(("a",)), search.Term(("b",)), search.Term(("or",)), search.Term(("x",), prefix=True)
    ]
    assert search.fts5_query(parse("a b"), owner_id=7) == 'owner:u7 AND {title body} : ("a" AND "b"*)'
    assert search.tsquery_text(parse('"a b" c')) == "'a' <-> 'b' & 'c':*"
    assert len(parse(" ".join(["w"] * 60))) == search.MAX_TERMS
