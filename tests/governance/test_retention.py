"""``manage.py apply_retention``: deletes exactly the conversations past their owner's policy
(by last activity), their messages and image files on disk, keeps usage rows, logs the counts."""

import logging
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.chat.models import Conversation, Message, UsageRecord
from apps.governance.models import RetentionPolicy
from apps.governance.retention import days_for
from apps.media.models import Attachment

pytestmark = pytest.mark.django_db(transaction=True)  # file deletion runs on commit


def conversation(owner, *, age_days, images=0, temporary=False):
    """A conversation last active ``age_days`` ago with two messages and ``images`` stored files
    (each with a thumbnail next to it)."""
    conv = Conversation.objects.create(owner=owner, model_key="gpt-4o", temporary=temporary)
    question = Message.objects.create(conversation=conv, role="user", content="secret question")
    Message.objects.create(conversation=conv, parent=question, role="assistant", content="answer")
    for _ in range(images):
        name = uuid.uuid4().hex
        relative = f"{owner.pk}/{name}.png"
        folder = Path(settings.MEDIA_ROOT) / str(owner.pk)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(b"\x89PNG fake")
        (folder / f"{name}.thumb.png").write_bytes(b"\x89PNG thumb")
        Attachment.objects.create(
            owner=owner, conversation=conv, message=question, kind="upload", path=relative,
            content_type="image/png", width=1, height=1, bytes=9, sha256="0" * 64,
        )
    UsageRecord.objects.create(user=owner, conversation=conv, purpose="chat", model_key="gpt-4o", prompt_tokens=7, completion_tokens=3)
    # ``updated`` is auto_now: set the last activity with an UPDATE.
    Conversation.objects.filter(pk=conv.pk).update(updated=timezone.now() - timedelta(days=age_days))
    return conv


@pytest.fixture
def people():
    User = get_user_model()
    legal, short = Group.objects.create(name="legal"), Group.objects.create(name="short")
    RetentionPolicy.objects.create(days=90)  # the default
    RetentionPolicy.objects.create(group=legal, days=365)
    RetentionPolicy.objects.create(group=short, days=30)
    both = User.objects.create_user("both")  # legal and short: the longer, 365
    both.groups.add(legal, short)
    plain = User.objects.create_user("plain")  # no group with a policy: the default, 90
    brief = User.objects.create_user("brief")  # short only: 30, even below the default
    brief.groups.add(short)
    return both, plain, brief


def test_policy_per_user(people):
    both, plain, brief = people
    assert [days_for(user=u) for u in people] == [365, 90, 30]
    RetentionPolicy.objects.filter(group__isnull=True).delete()
    assert days_for(user=plain) is None  # no policy: kept for good


def test_deletes_exactly_what_is_older_with_files(people, caplog):
    both, plain, brief = people
    keep = [
        conversation(both, age_days=364, images=1), conversation(plain, age_days=89, images=1),
        conversation(brief, age_days=29), conversation(plain, age_days=200, temporary=True),
    ]
    gone = [
        conversation(both, age_days=366, images=2), conversation(plain, age_days=91, images=1),
        conversation(brief, age_days=31),
    ]
    files = lambda convs: [  # noqa: E731
        Path(settings.MEDIA_ROOT) / a.variant_path(v) if v else a.absolute()
        for a in Attachment.objects.filter(conversation__in=convs) for v in (None, "thumb")
    ]
    kept_files, gone_files = files(keep), files(gone)
    assert len(gone_files) == 6 and all(p.exists() for p in kept_files + gone_files)

    out = StringIO()
    call_command("apply_retention", "--dry-run", stdout=out)
    assert "would delete 3 conversation(s), 6 message(s) and 3 image(s) of 3 user(s)" in out.getvalue()
    assert Conversation.objects.count() == 7 and all(p.exists() for p in gone_files)

    out = StringIO()
    with caplog.at_level(logging.INFO, logger="lapis.governance"):
        call_command("apply_retention", stdout=out)
    assert "deleted 3 conversation(s), 6 message(s) and 3 image(s) of 3 user(s)" in out.getvalue()
    assert any("deleted 3 conversation(s)" in r.getMessage() for r in caplog.records)
    assert set(Conversation.objects.values_list("pk", flat=True)) == {c.pk for c in keep}
    assert not Message.objects.filter(conversation_id__in=[c.pk for c in gone]).exists()
    assert not Attachment.objects.filter(conversation_id__in=[c.pk for c in gone]).exists()
    assert not any(p.exists() for p in gone_files) and all(p.exists() for p in kept_files)
    # Usage stays, counted for the user, without the conversation.
    assert UsageRecord.objects.count() == 7
    assert UsageRecord.objects.filter(conversation__isnull=True).count() == 3
    entry = AuditEntry.objects.get(action="retention.apply")
    assert entry.actor_name == "manage.py apply_retention" and entry.changes["conversations"] == 3

    # Run again: nothing more is due.
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert "deleted 0 conversation(s)" in out.getvalue()


def test_no_policy_deletes_nothing(db):
    owner = get_user_model().objects.create_user("old")
    conversation(owner, age_days=5000)
    call_command("apply_retention", stdout=StringIO())
    assert Conversation.objects.count() == 1


def test_chat_page_says_how_long(people):
    both, plain, brief = people
    client = Client()
    client.force_login(plain)
    page = client.get("/").content.decode()
    assert "Conversations are kept for 90 days after their last message." in page
    client.force_login(both)
    assert "kept for 365 days" in client.get("/").content.decode()
    RetentionPolicy.objects.all().delete()
    assert "retention-note" not in client.get("/").content.decode()


def test_policy_changes_are_audited(people):
    policy = RetentionPolicy.objects.get(group__name="legal")
    policy.days = 400
    policy.save()
    entry = AuditEntry.objects.filter(action="retention.change").latest("id")
    assert entry.changes == {"days": [365, 400]}


def test_one_default_policy_said_in_words(people):
    from django.db import IntegrityError, transaction

    admin = get_user_model().objects.create_user("boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    response = client.post("/admin/governance/retentionpolicy/add/", {"group": "", "days": "10"})
    assert response.status_code == 200
    assert "There is already a default policy (no group): change that one." in response.content.decode()
    response = client.post("/admin/governance/retentionpolicy/add/", {"group": "", "days": "0"})
    assert "Ensure this value is greater than or equal to 1." in response.content.decode() or \
        "Keep conversations for at least 1 day." in response.content.decode()
    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionPolicy.objects.create(days=5)  # the database refuses a second default too
    assert RetentionPolicy.objects.filter(group__isnull=True).count() == 1
