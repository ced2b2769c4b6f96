"""Personal API keys in the database and the pages: hashed, owner-only, admin revocation."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from apps.gateway.models import ApiKey, digest
from apps.gateway.services import KeyRefused, create_key

pytestmark = pytest.mark.django_db


def member(username, *, staff=False):
    user = get_user_model().objects.create_user(username, password="x-Secret-42!", is_staff=staff,
                                                is_superuser=staff)
    group, _ = Group.objects.get_or_create(name="api-users")
    group.permissions.add(Permission.objects.get(codename="use_api_keys"))
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    return user, client


def test_only_a_digest_and_the_prefix_are_stored():
    user, _ = member("ann")
    key, raw = create_key(user=user, name="laptop")
    stored = ApiKey.objects.values().get(pk=key.pk)
    assert raw not in str(stored) and stored["digest"] == digest(raw) and stored["prefix"] == raw[:12]
    with pytest.raises(KeyRefused, match="name"):
        create_key(user=user, name="  ")


def test_the_page_shows_a_new_key_once_and_revokes_only_own_keys():
    ann, client = member("ann")
    page = client.post("/settings/api-keys/", {"name": "notebook", "expires_in": "7"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    raw = page.context["new_key"]
    assert raw.startswith("lapis-") and raw in page.content.decode()
    assert raw not in client.get("/settings/api-keys/").content.decode()
    key = ApiKey.objects.get(user=ann)
    assert key.expires is not None
    bob, other = member("bob")
    assert other.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404  # not his
    key.refresh_from_db()
    assert key.revoked is None
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked is not None and key.revoked_by == ann


def test_without_the_permission_no_key_is_made():
    user = get_user_model().objects.create_user("cy", password="x-Secret-42!")
    client = Client()
    client.force_login(user)
    assert client.post("/settings/api-keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_admins_list_and_revoke_any_key():
    ann, _ = member("ann")
    key, _raw = create_key(user=ann, name="laptop")
    admin, client = member("root", staff=True)
    listing = client.get("/admin/gateway/apikey/")
    assert listing.status_code == 200 and key.prefix in listing.content.decode()
    assert key.digest not in listing.content.decode()
    client.post("/admin/gateway/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked is not None and key.revoked_by == admin
    assert client.get("/admin/gateway/apikey/add/").status_code == 403
