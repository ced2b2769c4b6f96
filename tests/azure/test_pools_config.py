"""The ``pools`` extension of the model-group YAML: validated with lines, built into the
registry (what users pick), shown in the admin preview."""

import re

import pytest
from django.contrib.auth import get_user_model

from apps.azure.config import parse_config
from apps.azure.registry import POOLS_SECTION, Registry

ENV = {"EU_KEY": "eu-canary-91", "US_KEY": "us-canary-22", "CONFIG_ALLOWED_VARIABLE_PREFIXES": "EU_,US_"}

GROUPS = """\
    groups:
      - group: eu
        apiKey: ${EU_KEY}
        instanceName: contoso-eu
        version: "2024-10-21"
        models:
          gpt-4o-eu: { deploymentName: gpt-4o, label: gpt-4o (EU), contextWindow: 64000 }
          gpt-4o-mini-eu: { deploymentName: mini }
          dall-e-3: { deploymentName: dalle3, version: "2024-02-01" }
      - group: us
        apiKey: ${US_KEY}
        instanceName: contoso-us
        version: "2024-10-21"
        models:
          gpt-4o-us: { deploymentName: gpt-4o, label: gpt-4o (US) }
          gpt-4o-mini-us: { deploymentName: mini, access: [premium] }
"""


def config(pools):
    return "endpoints:\n  azureOpenAI:\n    pools:\n" + pools + GROUPS


GOOD = config("""\
      gpt-4o:
        label: GPT-4o
        members: [gpt-4o-eu, gpt-4o-us]
""")


def errors(text):
    result = parse_config(text, environ=ENV)
    assert result.config is None
    return [str(problem) for problem in result.errors]


def test_a_pool_is_one_model_users_pick_served_by_its_members_in_order():
    result = parse_config(GOOD, environ=ENV)
    assert result.ok, result.errors
    (pool,) = result.config.pools
    assert (pool.name, pool.members, pool.label, pool.line) == ("gpt-4o", ("gpt-4o-eu", "gpt-4o-us"), "GPT-4o", 4)
    registry = Registry(result.config)
    spec = registry.get("gpt-4o")
    assert [m.key for m in spec.members] == ["gpt-4o-eu", "gpt-4o-us"]
    assert [m.group for m in spec.members] == ["eu", "us"]
    assert spec.label == "GPT-4o" and spec.type == "chat"
    assert spec.context_window == 64000, "the smallest member window"
    assert spec.vision
    # The picker: the pool in a section of its own, its members not listed; the rest as before.
    assert [(name, [s.key for s in specs]) for name, specs in registry.groups()] == [
        (POOLS_SECTION, ["gpt-4o"]),
        ("eu", ["gpt-4o-mini-eu", "dall-e-3"]),
        ("us", ["gpt-4o-mini-us"]),
    ]
    assert [s.key for s in registry.chat_models()] == ["gpt-4o", "gpt-4o-mini-eu", "gpt-4o-mini-us"]
    # Members stay models of their groups (old conversations, the admin preview).
    assert registry.get("gpt-4o-us").target.request_url("gpt-4o").startswith("https://contoso-us.openai.azure.com/")
    assert [name for name, _ in registry.config_groups()] == ["eu", "us"]


def test_the_short_form_is_the_members_list_and_the_file_without_pools_stays_valid():
    short = config("      gpt-4o: [gpt-4o-eu, gpt-4o-us]\n")
    result = parse_config(short, environ=ENV)
    assert result.ok and result.config.pools[0].members == ("gpt-4o-eu", "gpt-4o-us")
    # Every member is an ordinary model: the file minus the extension (what LibreChat keeps)
    # has the same models.
    plain = parse_config("endpoints:\n  azureOpenAI:\n" + GROUPS, environ=ENV)
    assert plain.ok
    assert [m.key for m in plain.config.models()] == [m.key for m in result.config.models()]


@pytest.mark.parametrize(
    ("pools", "expected"),
    [
        ("      gpt-4o: [gpt-4o-eu, gpt-4o-usa]\n",
         'pools.gpt-4o.members[1] (line 4, col 27): "gpt-4o-usa" is not a model of this file (did you mean "gpt-4o-us"?)'),
        ("      gpt-4o: [gpt-4o-eu, gpt-4o-eu]\n",
         'pools.gpt-4o.members[1] (line 4, col 27): "gpt-4o-eu" is listed twice in pool "gpt-4o"'),
        ("      gpt-4o: [gpt-4o-eu, gpt-4o-us]\n      other: [gpt-4o-us, gpt-4o-mini-eu]\n",
         'pools.other.members[0] (line 5, col 15): "gpt-4o-us" is already a member of pool "gpt-4o"'),
        ("      gpt-4o-eu: [gpt-4o-mini-eu, gpt-4o-us]\n",
         'pools.gpt-4o-eu (line 4, col 7): pool "gpt-4o-eu" has the name of a model in group "eu": a pool needs a name of its own'),
        ("      gpt-4o: [gpt-4o-eu]\n",
         "pools.gpt-4o.members (line 4, col 15): members must be a list of at least two model keys"),
        ("      gpt-4o:\n        label: GPT-4o\n        member: [gpt-4o-eu, gpt-4o-us]\n",
         'pools.gpt-4o.member (line 6, col 9): unknown key "member" in pool "gpt-4o" (did you mean "members"?)'),
        ("      gpt-4o:\n        label: GPT-4o\n",
         'pools.gpt-4o (line 5, col 9): pool "gpt-4o" needs members (a list of model keys)'),
        ("      pics: [gpt-4o-eu, dall-e-3]\n",
         'pools.pics.members (line 4, col 13): members of pool "pics" must be the same kind of model: "gpt-4o-eu" is chat, "dall-e-3" is image'),
        ("      mini: [gpt-4o-mini-eu, gpt-4o-mini-us]\n",
         'pools.mini (line 4, col 7): members of pool "mini" have different access rules: give the pool its own access list'),
        ("      ${EU_KEY}: [gpt-4o-eu, gpt-4o-us]\n",
         "pools.${EU_KEY} (line 4, col 7): ${...} is not expanded in a pool name"),
        ("      gpt-4o: {members: [gpt-4o-eu, 12]}\n",
         'pools.gpt-4o.members[1] (line 4, col 37): a member is a model key of this file'),
        ("      - gpt-4o-eu\n", "pools (line 4, col 7): must be a mapping"),
    ],
)
def test_pool_mistakes_are_reported_with_their_line(pools, expected):
    found = errors(config(pools))
    assert any(problem.startswith("endpoints.azureOpenAI." + expected) or problem.startswith(expected)
               for problem in found), found
    assert not any("canary" in problem for problem in found)


def test_a_pool_with_its_own_access_list_is_valid_and_is_what_users_are_checked_against():
    text = config("      mini:\n        members: [gpt-4o-mini-eu, gpt-4o-mini-us]\n        access: [premium]\n")
    result = parse_config(text, environ=ENV)
    assert result.ok, result.errors
    assert Registry(result.config).get("mini").access == ("premium",)


def test_title_model_may_name_a_pool():
    text = GOOD.replace("    pools:\n", "    titleConvo: true\n    titleModel: gpt-4o\n    pools:\n", 1)
    result = parse_config(text, environ=ENV)
    assert result.ok, result.errors
    assert Registry(result.config).title_model.key == "gpt-4o"


@pytest.mark.django_db
def test_the_admin_preview_lists_pools_with_their_members_in_order(client, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    admin_user = get_user_model().objects.create_superuser("root", password="Zebra-crossing-42!")
    client.force_login(admin_user)
    response = client.post("/admin/azure/configversion/add/", {"text": GOOD})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="preview-pool" data-key="gpt-4o"' in html
    members = re.findall(r'data-testid="pool-member">([^<]+)<', html)
    assert members == ["gpt-4o-eu (eu, gpt-4o)", "gpt-4o-us (us, gpt-4o)"]
    assert "canary" not in html
