"""The audit log through the admin over HTTP (Django's test client on the real URLs, views and
middleware): config activations and rollbacks with their YAML diff, sign-ins, promotions,
group changes, limits and deletions; and that nobody can add, change or delete an entry."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from apps.audit.models import AuditEntry
from apps.azure.models import ConfigVersion
from apps.governance.models import Budget, RateLimit

pytestmark = pytest.mark.django_db
PASSWORD = "Quartz-lantern-93!"
CANARY = "inline-canary-5d2e"
PROXY = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.9"}


def config(models, key="${AUDIT_KEY}"):
    lines = "".join(f"          {m}: true\n" for m in models)
    return (
        "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n"
        f"        apiKey: {key}\n        instanceName: res\n        deploymentName: d\n"
        f'        version: "2024-10-21"\n        models:\n{lines}'
    )


@pytest.fixture(autouse=True)
def _env(monkeypatch, settings):
    monkeypatch.setenv("AUDIT_KEY", "secret-from-env")
    monkeypatch.setenv("CONFIG_ALLOWED_VARIABLE_PREFIXES", "AUDIT_,LAPIS_,AZURE_")
    settings.TRUSTED_PROXY_COUNT = 1  # one proxy: the client is the last X-Forwarded-For entry


@pytest.fixture
def admin_client():
    get_user_model().objects.create_user("root", password=PASSWORD, is_staff=True, is_superuser=True)
    client = Client(**PROXY)
    response = client.post("/login/?next=/admin/", {"username": "root", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302, response.content[:500]
    return client


def load_and_activate(client, text):
    response = client.post("/admin/azure/configversion/add/", {"text": text})
    assert response.status_code == 200 and b"config-preview" in response.content, response.content[:2000]
    version = ConfigVersion.objects.order_by("-pk").first()
    response = client.post(f"/admin/azure/configversion/{version.pk}/activate/")
    assert response.status_code == 302
    return version


def test_activation_and_rollback_with_diff(admin_client):
    first = load_and_activate(admin_client, config(["gpt-4o", "gpt-4o-mini"]))
    second = load_and_activate(admin_client, config(["gpt-4o", "gpt-4.1"], key=CANARY))
    entries = AuditEntry.objects.filter(action="config.activate").order_by("id")
    assert [e.target_id for e in entries] == [str(first.pk), str(second.pk)]
    latest = entries.last()
    assert latest.actor.username == "root" and latest.actor_name == "root"
    assert latest.address == "203.0.113.9"  # TRUSTED_PROXY_COUNT=1: never the forgeable leftmost
    assert f"--- version {first.pk}" in latest.diff and f"+++ version {second.pk}" in latest.diff
    assert "-          gpt-4o-mini: true" in latest.diff.splitlines()
    assert "+          gpt-4.1: true" in latest.diff.splitlines()
    assert "-        apiKey: ${AUDIT_KEY}" in latest.diff.splitlines()  # a reference stays readable
    assert not AuditEntry.objects.filter(diff__contains=CANARY).exists()  # an inline key is masked
    assert "secret-from-env" not in "".join(AuditEntry.objects.values_list("diff", flat=True))
    assert AuditEntry.objects.filter(action="config.load", target_id=str(second.pk)).exists()

    # Back to the first version: a rollback, its diff the other way round.
    response = admin_client.post(f"/admin/azure/configversion/{first.pk}/activate/")
    assert response.status_code == 302
    rollback = AuditEntry.objects.get(action="config.rollback")
    assert rollback.target_id == str(first.pk) and f"was version {second.pk}" in rollback.summary
    assert "+          gpt-4o-mini: true" in rollback.diff.splitlines()

    # The admin lists it, filters by action and shows the diff on the entry's page.
    listing = admin_client.get("/admin/audit/auditentry/", {"action__exact": "config.rollback"})
    assert listing.status_code == 200
    assert f"rolled back to config version {first.pk}".encode() in listing.content
    assert b"activated config version" not in listing.content
    page = admin_client.get(f"/admin/audit/auditentry/{rollback.pk}/change/")
    assert page.status_code == 200 and b'data-testid="audit-diff"' in page.content
    assert b"+          gpt-4o-mini: true" in page.content
    assert b"Save" not in page.content  # read-only


def test_entries_are_read_only_even_for_a_superuser(admin_client):
    entry = AuditEntry.objects.get(action="signin")
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin_client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"summary": "x"}).status_code == 403
    assert admin_client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin_client.post("/admin/audit/auditentry/", {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    assert response.status_code in (200, 302)
    plain = get_user_model().objects.create_user("plain", password=PASSWORD)
    client = Client()
    client.force_login(plain)
    assert client.get("/admin/audit/auditentry/").status_code == 403


def test_admin_sign_in_and_failed_sign_in(admin_client):
    signin = AuditEntry.objects.get(action="signin")
    assert signin.actor_name == "root" and signin.address == "203.0.113.9"
    client = Client(**PROXY)
    response = client.post("/login/?next=/admin/", {"username": "root", "password": "wrong-pass-77", "next": "/admin/"})
    assert response.status_code == 200
    failed = AuditEntry.objects.get(action="signin.failed")
    assert failed.actor is None and failed.actor_name == "root" and failed.address == "203.0.113.9"
    assert "wrong-pass-77" not in str(failed.changes) + failed.summary + failed.diff
    # A plain user's sign-in to the chat is not an admin sign-in.
    get_user_model().objects.create_user("carol", password=PASSWORD)
    assert Client().post("/login/", {"username": "carol", "password": PASSWORD}).status_code == 302
    assert not AuditEntry.objects.filter(action="signin", actor_name="carol").exists()
    assert AuditEntry.objects.filter(action="user.create", target_repr="carol").exists()


def _user_form(user, **overrides):
    data = {
        "username": user.username, "first_name": "", "last_name": "", "email": "",
        "is_active": "on", "last_login_0": "", "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"), "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "external_identity-TOTAL_FORMS": "0", "external_identity-INITIAL_FORMS": "0",
        "external_identity-MIN_NUM_FORMS": "0", "external_identity-MAX_NUM_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_promotion_groups_and_deactivation_through_the_user_admin(admin_client):
    dave = get_user_model().objects.create_user("dave", password=PASSWORD)
    group = Group.objects.create(name="premium")
    url = f"/admin/auth/user/{dave.pk}/change/"
    response = admin_client.post(url, _user_form(dave, is_staff="on", groups=[group.pk]))
    assert response.status_code == 302, response.content.decode()[:3000]
    promote = AuditEntry.objects.get(action="user.promote")
    assert promote.actor_name == "root" and promote.target_repr == "dave"
    assert promote.changes == {"is_staff": [False, True]} and promote.address == "203.0.113.9"
    groups = AuditEntry.objects.get(action="user.groups")
    assert groups.changes == {"added": ["premium"]} and groups.actor_name == "root"

    response = admin_client.post(url, _user_form(dave, is_active="", is_staff="on"))
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="user.deactivate", target_repr="dave").exists()
    assert AuditEntry.objects.get(action="user.groups", changes__removed=["premium"])
    dave.groups.add(group)
    group.delete()
    gone = AuditEntry.objects.filter(action="user.groups").latest("id")
    assert gone.changes == {"group": "premium", "members": ["dave"]}


def test_load_config_command_is_the_actor(tmp_path):
    from django.core.management import call_command

    path = tmp_path / "models.yaml"
    path.write_text(config(["gpt-4o"]))
    call_command("load_config", str(path), "--activate", stdout=__import__("io").StringIO())
    entry = AuditEntry.objects.get(action="config.activate")
    assert entry.actor is None and entry.actor_name == "manage.py load_config"
    assert "+          gpt-4o: true" in entry.diff.splitlines() and "(none active)" in entry.diff


def test_limit_changes_and_deletions_in_the_admin(admin_client):
    bob = get_user_model().objects.create_user("bob", password=PASSWORD)
    response = admin_client.post("/admin/governance/budget/add/", {"user": bob.pk, "group": "", "period": "day", "unit": "tokens", "tokens": "5000", "currency": "USD"})
    assert response.status_code == 302, response.content.decode()[:2000]
    added = AuditEntry.objects.get(action="limits.change")
    assert added.changes["tokens"] == [None, 5000] and added.changes["unit"] == [None, "tokens"]
    assert added.actor_name == "root"
    budget = Budget.objects.get()
    response = admin_client.post(f"/admin/governance/budget/{budget.pk}/change/", {"user": bob.pk, "group": "", "period": "day", "unit": "tokens", "tokens": "9000", "currency": "USD"})
    assert response.status_code == 302
    changed = AuditEntry.objects.filter(action="limits.change").latest("id")
    assert changed.changes == {"tokens": [5000, 9000]}

    limit = RateLimit.objects.create(user=bob, answers_per_minute=3)
    response = admin_client.post(f"/admin/governance/ratelimit/{limit.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    deleted = AuditEntry.objects.get(action="admin.delete")
    assert deleted.changes == {"type": "governance.ratelimit", "id": str(limit.pk)} and deleted.actor_name == "root"
    assert AuditEntry.objects.filter(action="limits.change", summary__startswith="rate limit deleted").exists()


def test_an_export_names_what_and_how_many_never_the_rows():
    from apps.audit.context import acting
    from apps.audit.services import record_export

    admin = get_user_model().objects.create_user("exporter", is_staff=True)
    with acting(name="exporter", user=admin, address="192.0.2.1"):
        record_export(what="usage records", rows=42, filters={"model": "gpt-4o"})
    entry = AuditEntry.objects.get(action="admin.export")
    assert (entry.actor, entry.address, entry.summary) == (admin, "192.0.2.1", "exported 42 row(s) of usage records")
    assert entry.changes == {"filters": {"model": "gpt-4o"}, "rows": 42}
