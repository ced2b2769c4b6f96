"""Model facts as people see them: the /models/ page and the admin preview (real views)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from apps.azure.errors import wait_phrase
from tests.azure.test_config import EXAMPLES, TEAM_ENV

TEAM = (EXAMPLES / "team.yaml").read_text()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name, value in TEAM_ENV.items():
        monkeypatch.setenv(name, value)


def test_models_page_formats_windows_and_knows_text_only_models(client, activate_config):
    registry = activate_config(TEAM)
    assert registry.get("o3-mini").vision is False and registry.get("gpt-4.1").vision is True
    assert registry.get("dall-e-3").context_window == 0
    user = get_user_model().objects.create_user("reader", password="pw-123456789")
    client.force_login(user)
    html = client.get("/models/").content.decode()
    gpt41 = html.split('data-key="gpt-4.1"', 1)[1].split("</li>", 1)[0]
    assert "1,047,576 tokens" in gpt41 and "· images" in gpt41
    o3mini = html.split('data-key="o3-mini"', 1)[1].split("</li>", 1)[0]
    assert "200,000 tokens" in o3mini and "images" not in o3mini
    image = html.split('data-testid="image-model" data-key="dall-e-3"', 1)[1].split("</li>", 1)[0]
    assert "tokens" not in image
    assert "1047576" not in html


def test_admin_preview_shows_no_context_window_for_image_models(client, db):
    user = get_user_model().objects.create_user("ops", password="pw-123456789", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_configversion", "activate_configversion"]))
    client.force_login(user)
    html = client.post("/admin/azure/configversion/add/", {"text": TEAM}).content.decode()
    row = html.split('data-testid="preview-model" data-key="dall-e-3"', 1)[1].split("</tr>", 1)[0]
    cells = row.split("<td>")
    assert cells[4].startswith("–")  # Context
    gpt41 = html.split('data-testid="preview-model" data-key="gpt-4.1"', 1)[1].split("</tr>", 1)[0]
    assert "<td>1,047,576</td>" in gpt41
    o3mini = html.split('data-testid="preview-model" data-key="o3-mini"', 1)[1].split("</tr>", 1)[0]
    assert "vision" not in o3mini and "reasoning" in o3mini


@pytest.mark.parametrize(
    "seconds,phrase",
    [(58.361, "in 58 seconds"), (0.2, "in 1 second"), (1, "in 1 second"), (119.4, "in 119 seconds"),
     (170, "in 3 minutes"), (7300, "in 2 hours"), (None, "in a moment")],
)
def test_wait_phrase(seconds, phrase):
    assert wait_phrase(seconds) == phrase
