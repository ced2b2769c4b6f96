"""A live Lapis (Daphne, its own database) whose models point at the simulator, and helpers to
make users, groups and personal API keys on it."""

import uuid

import openai
import pytest

from tests.conftest import forget_rate_limit_counters
from tests.live import LiveServer
from tests.simulator_fixture import CHAT_VERSION

API_GROUP = "api-users"
# Kept small so that a test can cross it (and still above REQUEST_MAX_BYTES, 64 KB).
API_MAX_BYTES = 200_000


def gateway_config(simulator):
    return simulator.config_yaml(
        titleConvo=False, summarize=False,
        chat_models={
            "gpt-4o": {"deploymentName": "gpt-4o"},
            "gpt-4o-mini": {"deploymentName": "gpt-4o-mini"},
            "gpt-35-turbo": {"deploymentName": "gpt-35-turbo", "vision": False},
            "premium-4o": {"deploymentName": "gpt-4o", "access": ["premium"]},
        },
        extra_groups=[{
            "group": "embeddings", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": simulator.url,
            "version": CHAT_VERSION, "dropParams": ["user"],
            "models": {
                "text-embedding-3-small": {"deploymentName": "text-embedding-3-small", "type": "embedding"},
                "ada": {"deploymentName": "text-embedding-ada-002", "type": "embedding"},
            },
        }, {
            "group": "audio", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": simulator.url,
            "version": "2025-03-01-preview",
            "models": {"whisper": {"deploymentName": "whisper"}, "tts": {"deploymentName": "tts"}},
        }, {
            "group": "serverless", "apiKey": "${LAPIS_SIM_KEY}", "serverless": True,
            "baseURL": simulator.url + "/v1/chat/completions", "models": {"mistral-large": True},
        }, {
            "group": "tuned", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": simulator.url,
            "version": CHAT_VERSION, "addParams": {"top_p": 0.5, "temperature": 0.2},
            "dropParams": ["frequency_penalty"], "models": {"tuned-4o": {"deploymentName": "gpt-4o"}},
        }, {
            "group": "entra", "authMode": "entra", "endpoint": simulator.url, "version": CHAT_VERSION,
            "models": {"entra-mini": {"deploymentName": "gpt-4o-mini"}},
        }],
    )


@pytest.fixture(scope="module")
def lapis(azure_simulator, tmp_path_factory):
    config = tmp_path_factory.mktemp("gateway") / "models.yaml"
    config.write_text(gateway_config(azure_simulator))
    forget_rate_limit_counters()  # a fresh database's first user has id 1 again
    server = LiveServer(tmp_path_factory.mktemp("lapis-gateway"), extra_env={
        "CONFIG_PATH": str(config),
        "LAPIS_SIM_KEY": azure_simulator.api_key,
        "CHAT_ANSWERS_AT_ONCE": "0",
        "CHAT_ANSWERS_PER_MINUTE": "0",
        "API_REQUEST_MAX_BYTES": str(API_MAX_BYTES),
        "SECRET_KEY": "gateway-" + uuid.uuid4().hex,
        # Entra ID through the simulator's managed-identity endpoint (loopback only).
        "IDENTITY_ENDPOINT": azure_simulator.identity_endpoint,
        "IDENTITY_HEADER": azure_simulator.identity_header,
    })
    server.start()
    yield server
    server.stop()


def make_key(server, username, *, groups=(API_GROUP,), grant=True, password=None):
    """Create ``username`` (in ``groups``; ``grant``: the API-users group has the permission)
    and a key of theirs; return the raw key."""
    code = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from apps.gateway.services import create_key
user, made = get_user_model().objects.get_or_create(username={username!r})
if made:
    user.set_password({password or uuid.uuid4().hex!r}); user.save()
permission = Permission.objects.get(codename='use_api_keys')
for name in {list(groups)!r}:
    group, _ = Group.objects.get_or_create(name=name)
    if {grant!r} and name == {API_GROUP!r}:
        group.permissions.add(permission)
    user.groups.add(group)
key, raw = create_key(user=user, name='test key')
print(raw)
"""
    return server.shell(code).strip().splitlines()[-1]


def sdk(server, key, **options):
    """The official SDK, unchanged, pointed at Lapis."""
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, **options)
