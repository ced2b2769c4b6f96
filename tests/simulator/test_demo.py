"""The demo config that `make run` activates, and the management commands."""

import io
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from django.core.management import call_command

from apps.azure.models import ConfigVersion
from apps.azure.registry import get_registry
from tests.simulator_fixture import ROOT, free_port


@pytest.fixture
def demo_env(azure_simulator, monkeypatch):
    monkeypatch.delenv("CONFIG_PATH", raising=False)
    monkeypatch.setenv("LAPIS_SIM_KEY", azure_simulator.api_key)
    monkeypatch.setenv("LAPIS_DEMO_ENDPOINT", azure_simulator.url)
    return azure_simulator


def run_command():
    out = io.StringIO()
    call_command("load_demo_config", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_config_is_activated_once_and_marked_simulated(demo_env):
    assert "Demo config activated" in run_command()
    registry = get_registry()
    assert registry.simulated
    (group, models), = registry.groups()
    assert group == "Simulated Azure (demo)"
    assert all(model.simulated for model in models)
    assert [m.key for m in registry.chat_models()] == ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo", "gpt-5-codex"]
    assert [m.key for m in registry.chat_models() if m.responses_api] == ["gpt-5-codex"]
    assert [m.key for m in registry.image_models()] == ["dall-e-3", "gpt-image-1"]
    assert registry.first_vision_model().key == "gpt-4o"
    assert registry.title_convo and registry.title_model.key == "gpt-4o-mini"
    with urllib.request.urlopen(demo_env.url + "/_sim/health") as response:
        deployments = set(json.loads(response.read())["deployments"])
    assert {m.deployment for m in models} <= deployments
    assert "The demo config is active" in run_command()
    assert ConfigVersion.objects.count() == 1


@pytest.mark.django_db
def test_an_older_demo_is_updated_but_a_team_config_never_replaced(demo_env, activate_config):
    from apps.simulator.management.commands.load_demo_config import DEMO_PATH

    older = DEMO_PATH.read_text().replace("titleMethod: functions", "titleMethod: completion")
    activate_config(older)
    assert "Demo config activated" in run_command()
    assert ConfigVersion.objects.get(is_active=True).text == DEMO_PATH.read_text()

    activate_config(demo_env.config_yaml())
    assert "already active" in run_command()
    assert ConfigVersion.objects.get(is_active=True).text == demo_env.config_yaml()


@pytest.mark.django_db
def test_demo_config_never_replaces_config_path(demo_env, monkeypatch):
    monkeypatch.setenv("CONFIG_PATH", "/somewhere/models.yaml")
    assert "CONFIG_PATH is set" in run_command()
    assert not ConfigVersion.objects.exists()


def test_manage_py_azure_simulator_serves():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "azure_simulator", "--port", str(port), "--api-key", "other-key"],
        cwd=ROOT, env={**os.environ, "LAPIS_TIKTOKEN_DOWNLOAD": "0"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        banner = process.stdout.readline().decode()
        assert f"http://127.0.0.1:{port}" in banner
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            data=b'{"messages":[{"role":"user","content":"[sim:echo] ok"}]}',
            headers={"api-key": "other-key", "content-type": "application/json"})
        for _ in range(200):
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                if process.poll() is not None:
                    raise
                time.sleep(0.05)
        assert '"content":"ok"' in body
    finally:
        process.terminate()
        process.wait(timeout=10)
