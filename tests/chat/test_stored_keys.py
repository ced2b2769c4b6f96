"""Keys typed in the admin (``${secret:NAME}``): stored encrypted, used for the upstream call,
shown nowhere; a YAML waiting for one loads once it is typed, without a restart."""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.azure import registry as registry_module
from apps.azure.models import ConfigVersion, StoredSecret
from apps.azure.registry import get_registry
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)
KEY_A = "sw3lqk7C8zPj0hV0o8E9fYq9m3Jr2bqX2tKJ3x1y4uE="
KEY_B = "q0h0b2J6lqfX7rP8fK3fC1sYt0w8Qy4m2V6e9n5a7dI="


def sim_yaml(sim, key_ref):
    return sim.config_yaml(titleConvo=False, summarize=False).replace("${LAPIS_SIM_KEY}", key_ref, 1)


def admin_client():
    admin = get_user_model().objects.create_superuser("keeper", password="Zebra-crossing-42!")
    client = Client()
    client.force_login(admin)
    return client


def type_key(client, name, value, *, pk=None):
    url = f"/admin/azure/storedsecret/{pk}/change/" if pk else "/admin/azure/storedsecret/add/"
    return client.post(url, {"name": name, "value": value})


def load_and_activate_in_admin(client, text):
    page = client.post("/admin/azure/configversion/add/", {"text": text})
    html = page.content.decode()
    if 'data-testid="config-error"' in html:
        return html, None
    version = ConfigVersion.objects.order_by("-pk").first()
    assert client.post(f"/admin/azure/configversion/{version.pk}/activate/").status_code == 302
    return html, version


async def answer(socket, client_id, model="gpt-4o"):
    await socket.send({"type": "send", "client_id": client_id, "text": "Hello [sim:words 5]", "model": model})
    created = await socket.created_answer()
    return await socket.done(created["id"])


async def test_a_key_typed_in_the_admin_is_used_upstream_and_shown_nowhere(
    azure_simulator, user_a, open_socket, caplog, settings
):
    settings.CHAT_IDLE_TIMEOUT = 5
    caplog.set_level(logging.DEBUG)
    canary = azure_simulator.api_key  # the simulator takes this key and no other
    client = await ado(admin_client)

    # The YAML names a key nobody typed yet: refused, with the line, nothing replaced.
    html, version = await ado(load_and_activate_in_admin, client, sim_yaml(azure_simulator, "${secret:NORTH_KEY}"))
    assert version is None and "stored key NORTH_KEY is not set" in html and 'data-line="' in html

    response = await ado(type_key, client, "NORTH_KEY", canary)
    assert response.status_code == 302
    stored = await StoredSecret.objects.aget(name="NORTH_KEY")
    assert canary not in stored.ciphertext and stored.ciphertext.startswith("gAAAA")  # a Fernet token
    from apps.audit.models import AuditEntry

    (audited,) = await ado(list, AuditEntry.objects.filter(action=AuditEntry.Action.KEY_CHANGE))
    assert audited.actor_name == "keeper" and "NORTH_KEY" in audited.summary
    assert canary not in str(audited.changes) and stored.ciphertext not in str(audited.changes)

    html, version = await ado(load_and_activate_in_admin, client, sim_yaml(azure_simulator, "${secret:NORTH_KEY}"))
    assert version is not None and "${secret:NORTH_KEY}" in html
    azure_simulator.reset()
    socket = await open_socket(user_a[1])
    done = await answer(socket, "k1")
    assert done["status"] == "complete", done
    (call,) = azure_simulator.requests("gpt-4o")
    assert call["status"] == 200, "the simulator took the typed key"

    pages = [f"/admin/azure/storedsecret/{stored.pk}/change/", "/admin/azure/storedsecret/",
             f"/admin/azure/configversion/{version.pk}/", "/admin/azure/configversion/", "/models/", "/"]
    for url in pages:
        page = await ado(client.get, url)
        assert page.status_code == 200, url
        assert canary not in page.content.decode(), f"the key shows on {url}"
    user_page = await ado(user_a[1].get, "/")
    assert canary not in user_page.content.decode()
    assert canary not in "".join(str(frame) for frame in socket.frames)
    assert canary not in caplog.text
    assert canary not in "".join(str(version.text) for version in await ado(list, ConfigVersion.objects.all()))


async def test_changing_a_stored_key_reaches_the_running_registry(azure_simulator, user_a, open_socket, settings):
    """A wrong key typed first: answers fail with auth_failed; the right one typed over it is
    used from the next answer on (each process re-reads the keys with the active version)."""
    settings.CHAT_IDLE_TIMEOUT = 5
    client = await ado(admin_client)
    await ado(type_key, client, "SOUTH_KEY", "not-the-right-key")
    _, version = await ado(load_and_activate_in_admin, client, sim_yaml(azure_simulator, "${secret:SOUTH_KEY}"))
    assert version is not None
    socket = await open_socket(user_a[1])
    failed = await answer(socket, "w1")
    assert failed["status"] == "error" and failed["error"]["code"] == "auth_failed"
    assert "not-the-right-key" not in str(failed)

    stored = await StoredSecret.objects.aget(name="SOUTH_KEY")
    response = await ado(type_key, client, "SOUTH_KEY", "", pk=stored.pk)
    assert response.status_code == 302, "an empty value keeps the stored one"
    assert (await StoredSecret.objects.aget(pk=stored.pk)).ciphertext == stored.ciphertext
    await ado(type_key, client, "SOUTH_KEY", azure_simulator.api_key, pk=stored.pk)
    registry_module._state["checked"] = 0.0  # no need to wait out the once-a-second check
    done = await answer(socket, "w2")
    assert done["status"] == "complete", done
    assert (await ado(get_registry)).version_id == version.pk, "the same version, its key re-read"


def test_rotation_and_a_lost_key(azure_simulator, settings, db):
    settings.LAPIS_SECRETS_KEYS = KEY_A
    secret = StoredSecret(name="EAST_KEY")
    secret.set_value(azure_simulator.api_key)
    secret.save()
    from apps.azure.config import parse_config

    text = sim_yaml(azure_simulator, "${secret:EAST_KEY}")
    assert parse_config(text).errors == []
    settings.LAPIS_SECRETS_KEYS = f"{KEY_B},{KEY_A}"
    call_command("rotate_secrets")
    settings.LAPIS_SECRETS_KEYS = KEY_B  # the old key is gone: the rotated token still opens
    assert parse_config(text).errors == []
    settings.LAPIS_SECRETS_KEYS = KEY_A
    (problem,) = parse_config(text).errors
    assert "EAST_KEY can't be decrypted" in problem.message and problem.line > 1
    assert azure_simulator.api_key not in problem.message
    settings.LAPIS_SECRETS_KEYS = "not-a-fernet-key"
    with pytest.raises(CommandError, match="entry 1 is not a Fernet key"):
        call_command("rotate_secrets")
    from apps.azure.checks import check_secrets_keys

    assert [p.id for p in check_secrets_keys()] == ["lapis.E005"]


@pytest.mark.parametrize(("reference", "message"), [
    ("${secret:bad-name}", "not a valid stored key name"),
    ("${secret:}", "not a valid stored key name"),
])
def test_bad_references_say_what_and_where(azure_simulator, db, reference, message):
    from apps.azure.config import parse_config

    (problem,) = parse_config(sim_yaml(azure_simulator, reference)).errors
    assert message in problem.message and problem.path.endswith("apiKey")


def test_the_value_is_write_only_in_the_admin(db):
    client = admin_client()
    assert type_key(client, "1BAD", "x").status_code == 200
    page = client.post("/admin/azure/storedsecret/add/", {"name": "WEST_KEY", "value": ""})
    assert "Type the key" in page.content.decode() and not StoredSecret.objects.exists()
    type_key(client, "WEST_KEY", "v-canary-77")
    stored = StoredSecret.objects.get()
    page = client.get(f"/admin/azure/storedsecret/{stored.pk}/change/").content.decode()
    assert "v-canary-77" not in page and stored.ciphertext not in page
    assert get_registry() is not None
