"""Versions, activation, cross-process pickup, CONFIG_PATH, commands and the admin pages."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.azure import registry as registry_module
from apps.azure.models import ConfigVersion
from apps.azure.registry import get_registry
from apps.azure.services import load_and_activate, load_version
from tests.azure.test_config import EXAMPLES, TEAM_ENV

pytestmark = pytest.mark.django_db
CANARY = "canary-admin-4c1f"
ROOT = Path(__file__).resolve().parents[2]


def config(models=("gpt-4o", "gpt-4o-mini"), key="${ADMIN_KEY}"):
    lines = "".join(f"          {m}: true\n" for m in models)
    return (
        "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n"
        f"        apiKey: {key}\n        instanceName: res\n        deploymentName: d\n"
        f'        version: "2024-10-21"\n        models:\n{lines}'
    )


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("ADMIN_KEY", CANARY)
    for name, value in TEAM_ENV.items():
        monkeypatch.setenv(name, value)
    # This file's own names (UNSET_ for broken.yaml's unset one), allowed by the operator.
    prefixes = TEAM_ENV["CONFIG_ALLOWED_VARIABLE_PREFIXES"] + ",ADMIN_KEY,ONLY_ELSEWHERE_KEY,UNSET_"
    monkeypatch.setenv("CONFIG_ALLOWED_VARIABLE_PREFIXES", prefixes)


def test_bad_text_changes_nothing():
    load_and_activate(text=config(), source="command")
    before = get_registry().version_id
    result = load_and_activate(text=config() + "      - group: g\n", source="command")
    assert result.errors
    assert ConfigVersion.objects.count() == 1
    assert get_registry().version_id == before


def test_one_active_version_and_rollback(activate_config):
    first = activate_config(config())
    assert [m.key for m in first.chat_models()] == ["gpt-4o", "gpt-4o-mini"]
    second = activate_config(config(models=("gpt-4.1",)))
    assert [m.key for m in second.chat_models()] == ["gpt-4.1"]
    assert ConfigVersion.objects.filter(is_active=True).count() == 1
    from apps.azure.services import activate_version

    activate_version(version=ConfigVersion.objects.get(pk=first.version_id))
    assert get_registry().version_id == first.version_id


def test_other_process_activation_is_seen_within_check_interval(activate_config, monkeypatch):
    activate_config(config())
    # Another process writes the DB directly; this process only sees it through the version check.
    version = ConfigVersion.objects.create(text=config(models=("o1",)), checksum="x", source="command")
    ConfigVersion.objects.update(is_active=False)
    ConfigVersion.objects.filter(pk=version.pk).update(is_active=True)
    assert get_registry().version_id != version.pk  # cached for up to CHECK_INTERVAL
    monkeypatch.setitem(registry_module._state, "checked", 0.0)  # the interval has passed
    assert get_registry().version_id == version.pk
    assert [m.key for m in get_registry().chat_models()] == ["o1"]


def test_a_version_this_process_cannot_use_keeps_the_models_it_has(activate_config, monkeypatch, caplog):
    good = activate_config(config())
    # Another process, whose environment has a variable this one lacks, activated a new version.
    needs_more = config().replace("${ADMIN_KEY}", "${ONLY_ELSEWHERE_KEY}")
    version = ConfigVersion.objects.create(text=needs_more, checksum="y", source="command")
    ConfigVersion.objects.update(is_active=False)
    ConfigVersion.objects.filter(pk=version.pk).update(is_active=True)
    monkeypatch.setitem(registry_module._state, "checked", 0.0)
    assert get_registry().version_id == good.version_id
    assert [m.key for m in get_registry().chat_models()] == ["gpt-4o", "gpt-4o-mini"]
    assert "ONLY_ELSEWHERE_KEY" in caplog.text and "unusable here" in caplog.text
    caplog.clear()
    monkeypatch.setitem(registry_module._state, "checked", 0.0)
    assert get_registry().version_id == good.version_id
    assert "ONLY_ELSEWHERE_KEY" not in caplog.text  # not parsed again every second


def test_load_version_stores_inactive():
    version, result = load_version(text=config(), source="admin_paste")
    assert result.errors == [] and not version.is_active and version.checksum


def test_commands(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(config())
    bad.write_text((EXAMPLES / "broken.yaml").read_text())
    call_command("validate_config", str(good))
    with pytest.raises(CommandError):
        call_command("validate_config", str(bad))
    out = capsys.readouterr().out
    assert out.count("error:") == 12
    call_command("load_config", str(good))
    assert not ConfigVersion.objects.get().is_active
    call_command("load_config", str(good), "--activate")
    assert ConfigVersion.objects.filter(is_active=True).count() == 1
    assert CANARY not in capsys.readouterr().out


def test_config_path_at_start(tmp_path, settings):
    from django.core.exceptions import ImproperlyConfigured

    from apps.azure.checks import check_config_path, load_config_path_at_start

    path = tmp_path / "team.yaml"
    path.write_text((EXAMPLES / "team.yaml").read_text())
    settings.CONFIG_PATH = str(path)
    load_config_path_at_start()
    active = ConfigVersion.objects.get(is_active=True)
    assert active.source == "file"
    load_config_path_at_start()  # unchanged file: no new version
    assert ConfigVersion.objects.count() == 1
    path.write_text((EXAMPLES / "broken.yaml").read_text())
    assert len([e for e in check_config_path() if e.id == "lapis.E001"]) == 12
    with pytest.raises(ImproperlyConfigured) as info:
        load_config_path_at_start()
    assert "12 error(s)" in str(info.value) and "UNSET_VARIABLE_FOR_TEST" in str(info.value)
    assert ConfigVersion.objects.get(is_active=True).pk == active.pk


def test_bad_config_path_stops_server_start(tmp_path):
    """The real ASGI start-up: importing project.asgi with a bad CONFIG_PATH fails with every error."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(CONFIG_PATH=str(EXAMPLES / "broken.yaml"), DATA_DIR=str(tmp_path), SECRET_KEY="x" * 50)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    proc = subprocess.run([sys.executable, "-c", "import project.asgi"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "lapis.E001" in proc.stderr and "UNSET_VARIABLE_FOR_TEST" in proc.stderr
    assert proc.stderr.count("endpoints.azureOpenAI") >= 12


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("ops", password="pw-123456789", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_configversion", "activate_configversion"])
    )
    client.force_login(user)
    return client


def test_admin_flow_and_no_secret(staff):
    page = staff.post("/admin/azure/configversion/add/", {"text": (EXAMPLES / "broken.yaml").read_text()})
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('data-testid="config-error"') == 12
    assert 'data-line="14"' in html and 'data-line="32"' in html
    page = staff.post("/admin/azure/configversion/add/", {"text": config(key=CANARY)})
    html = page.content.decode()
    assert 'data-testid="config-preview"' in html and "diff-added" in html
    assert CANARY not in html  # the inline key is masked in the YAML listing too
    page = staff.post("/admin/azure/configversion/add/", {"text": config()})
    html = page.content.decode()
    assert CANARY not in html and "${ADMIN_KEY}" in html
    assert "https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21" in html
    assert not ConfigVersion.objects.filter(is_active=True).exists()  # a preview activates nothing
    preview_version = ConfigVersion.objects.order_by("-pk").first()
    assert f"/admin/azure/configversion/{preview_version.pk}/activate/" in html
    assert 'name="yaml"' not in html  # the text does not round-trip through the page
    done = staff.post(f"/admin/azure/configversion/{preview_version.pk}/activate/")
    assert done.status_code == 302
    version = ConfigVersion.objects.get(is_active=True)
    assert version.pk == preview_version.pk
    assert version.source == "admin_paste"
    detail = staff.get(f"/admin/azure/configversion/{version.pk}/").content.decode()
    assert CANARY not in detail and "gpt-4o-mini" in detail
    listing = staff.get("/admin/azure/configversion/").content.decode()
    assert "active-marker" in listing
    models = staff.get("/models/").content.decode()
    assert models.index('data-key="gpt-4o"') < models.index('data-key="gpt-4o-mini"')


def test_permissions(client):
    User = get_user_model()
    user = User.objects.create_user("plain", password="pw-123456789")
    client.force_login(user)
    version = ConfigVersion.objects.create(text=config(), checksum="c", source="command")
    for url in ["/admin/azure/configversion/", "/admin/azure/configversion/add/", f"/admin/azure/configversion/{version.pk}/"]:
        assert client.get(url).status_code == 403
    assert client.post(f"/admin/azure/configversion/{version.pk}/activate/").status_code == 403
    viewer = User.objects.create_user("viewer", password="pw-123456789", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_configversion"))
    client.force_login(viewer)
    assert client.get("/admin/azure/configversion/").status_code == 200
    assert client.get("/admin/azure/configversion/add/").status_code == 403
    assert client.post(f"/admin/azure/configversion/{version.pk}/activate/").status_code == 403
    assert not ConfigVersion.objects.filter(is_active=True).exists()
    assert client.get("/models/").status_code == 200


def test_inline_secrets_masked_in_the_yaml_listing():
    from apps.azure.admin import mask_inline_secrets

    lines = [
        "      - group: g",
        f"        apiKey: {CANARY}   # inline",
        "        apiKey2: ${ADMIN_KEY}",
        "        additionalHeaders:",
        f"          Ocp-Apim-Subscription-Key: {CANARY}",
        "          x-ref: ${ADMIN_KEY}",
        "        models:",
        "          gpt-4o: true",
        f"      - {{group: h, additionalHeaders: {{k: {CANARY}}}}}",
        "        additionalHeaders: {a: " + CANARY + "}",
        "        apiKey: ${ADMIN_KEY}",
    ]
    masked = "\n".join(mask_inline_secrets(lines))
    assert CANARY not in masked
    assert "apiKey: ${ADMIN_KEY}" in masked and "x-ref: ${ADMIN_KEY}" in masked
    assert "gpt-4o: true" in masked


@pytest.mark.parametrize(
    "snippet",
    [
        '"apiKey": canary-admin-4c1f',
        "apiKey: |\n  canary-admin-4c1f\n  canary-admin-4c1f-line2",
        "apikey: canary-admin-4c1f",
        "API_KEY: canary-admin-4c1f",
        "apiKey: 'canary-admin-4c1f\n  canary-admin-4c1f-more'",
        "apiKey: canary-admin-4c1f # a comment",
        "additionalHeaders: {X-Key: canary-admin-4c1f}",
        "additionalHeaders:\n  X-Key: >\n    canary-admin-4c1f\n  X-Other: canary-admin-4c1f",
        "client_secret: canary-admin-4c1f",
    ],
)
def test_inline_secrets_are_masked_in_every_yaml_style(snippet):
    """Parseable or not (a stray tab-free syntax error is appended), no style shows the key."""
    from apps.azure.admin import mask_inline_secrets

    indented = "\n".join("      " + line for line in snippet.split("\n"))
    text = "groups:\n  - group: g\n" + indented + "\n      models: {gpt-4o: true}"
    for candidate in (text, text + "\n  - [unclosed"):
        masked = "\n".join(mask_inline_secrets(candidate.split("\n")))
        assert CANARY not in masked, masked
        assert "gpt-4o: true" in masked and "group: g" in masked
