"""What a config may reach (issues #13, #14): which fields expand ``${VAR}`` and which names they
may use, which headers may be added, which hosts requests may go to, and LibreChat keys that load."""

import pytest

from apps.azure.config import parse_config
from apps.azure.registry import Registry
from tests.azure.test_config import doc

CANARY = "canary-guard-93b1"
PG_CANARY = "pg-password-canary-5d0e"
ROOT = "endpoints.azureOpenAI.groups[0]"


def group(body, **settings):
    """A one-group file whose group body is BASE with ``body`` appended (or substituted)."""
    base = 'apiKey: ${LAPIS_KEY}\ninstanceName: res\nversion: "2024-10-21"\ndeploymentName: dep\n'
    return doc(base + body, **settings)


MODELS = "models:\n  gpt-4o: true\n"
ENV = {"LAPIS_KEY": CANARY, "PGPASSWORD": PG_CANARY, "AWS_SECRET_ACCESS_KEY": PG_CANARY, "LAPIS_LABEL": PG_CANARY}


def errors_of(text, environ):
    result = parse_config(text, environ=environ)
    messages = [str(problem) for problem in result.errors + result.warnings]
    for message in messages:
        assert CANARY not in message and PG_CANARY not in message
    return result


# ---- ${VAR}: which fields, which names --------------------------------------------------------

REFUSED_VARIABLES = [
    # (case, group body, path suffix, line, expected message part); the body starts on line 9
    ("PGPASSWORD in apiKey", MODELS, "apiKey", 5, "PGPASSWORD may not be referenced"),
    ("AWS secret in a header", "additionalHeaders:\n  x-k: ${AWS_SECRET_ACCESS_KEY}\n" + MODELS,
     "additionalHeaders.x-k", 10, "AWS_SECRET_ACCESS_KEY may not be referenced"),
    ("a label is never expanded", "models:\n  gpt-4o: {label: \"${LAPIS_LABEL}\"}\n",
     "models.gpt-4o.label", 10, "is not expanded in label"),
    ("deploymentName is literal", "models:\n  gpt-4o: {deploymentName: \"${LAPIS_KEY}\"}\n",
     "models.gpt-4o.deploymentName", 10, "is not expanded in deploymentName"),
    ("access names are literal", "access: [\"${LAPIS_KEY}\"]\n" + MODELS, "access[0]", 9, "is not expanded"),
    ("addParams are literal", "addParams:\n  user: \"${LAPIS_KEY}\"\n" + MODELS, "addParams.user", 10, "is not expanded"),
    ("a value holding ${ after expansion", "additionalHeaders:\n  x-k: ${LAPIS_NESTED}\n" + MODELS,
     "additionalHeaders.x-k", 10, "still holds ${ after"),
    ("an unclosed reference", "baseURL: \"https://gw.example/${LAPIS_KEY\"\n" + MODELS, "baseURL", 9, "still holds ${ after"),
]


@pytest.mark.parametrize("case,body,suffix,line,expected", REFUSED_VARIABLES, ids=[c[0] for c in REFUSED_VARIABLES])
def test_variables_only_in_secret_and_url_fields_and_only_allowed_names(case, body, suffix, line, expected):
    text = group(body)
    if case == "PGPASSWORD in apiKey":
        text = text.replace("${LAPIS_KEY}", "${PGPASSWORD}", 1)
    environ = {**ENV, "LAPIS_NESTED": "a${LAPIS_KEY}", "AZURE_CLIENT_SECRET": PG_CANARY}
    result = errors_of(text, environ)
    assert result.config is None
    assert [(p.path, p.line) for p in result.errors if expected in p.message] == [(f"{ROOT}.{suffix}", line)], [
        str(p) for p in result.errors
    ]


def test_group_and_endpoint_level_names_are_literal_and_refuse_references():
    text = group(MODELS + '  "${LAPIS_KEY}": true\n', endpoint="titleConvo: true\ntitleModel: \"${LAPIS_KEY}\"").replace(
        "- group: g", '- group: "${LAPIS_KEY}"')
    result = errors_of(text, ENV)
    paths = {p.path for p in result.errors if "is not expanded" in p.message}
    assert paths == {f"{ROOT}.group", "endpoints.azureOpenAI.titleModel", f"{ROOT}.models.${{LAPIS_KEY}}"}


def test_every_variable_error_at_once_with_its_line():
    text = (
        "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n"
        "        apiKey: ${PGPASSWORD}\n"                         # line 5
        "        instanceName: res\n"
        "        deploymentName: dep\n"
        '        version: "2024-10-21"\n'
        "        additionalHeaders:\n"
        "          x-a: ${AWS_SECRET_ACCESS_KEY}\n"              # line 10
        "        models:\n"
        "          gpt-4o:\n"
        '            label: "${LAPIS_LABEL}"\n'                  # line 13
    )
    result = errors_of(text, ENV)
    assert {(p.path, p.line) for p in result.errors} == {
        (f"{ROOT}.apiKey", 5),
        (f"{ROOT}.additionalHeaders.x-a", 10),
        (f"{ROOT}.models.gpt-4o.label", 13),
    }


def test_default_prefixes_allow_lapis_and_azure_names_only():
    text = group("additionalHeaders:\n  x-k: \"t-${AZURE_TEAM_TOKEN}\"\n" + MODELS)
    environ = {**ENV, "AZURE_TEAM_TOKEN": "tok", "AZURE_CLIENT_SECRET": PG_CANARY}
    result = errors_of(text, environ)
    assert result.errors == []
    g = result.config.groups[0]
    assert g.api_key.reveal() == CANARY and dict(g.headers)["x-k"].reveal() == "t-tok"
    for name, why in [("PGPASSWORD", "may not be referenced"), ("AZURE_CLIENT_SECRET", "Lapis's own secrets")]:
        refused = errors_of(text.replace("AZURE_TEAM_TOKEN", name), environ)
        assert [p.path for p in refused.errors if why in p.message] == [f"{ROOT}.additionalHeaders.x-k"]


def test_the_operator_chooses_the_prefixes():
    text = group(MODELS).replace("${LAPIS_KEY}", "${TEAM_KEY}")
    environ = {"TEAM_KEY": "k", "LAPIS_KEY": CANARY}
    assert errors_of(text, environ).errors  # TEAM_ is not allowed by default
    assert errors_of(text, {**environ, "CONFIG_ALLOWED_VARIABLE_PREFIXES": "TEAM_"}).errors == []
    only_team = errors_of(group(MODELS), {**environ, "CONFIG_ALLOWED_VARIABLE_PREFIXES": " TEAM_ "})
    assert any("LAPIS_KEY may not be referenced" in p.message and "TEAM_" in p.message for p in only_team.errors)
    none = errors_of(group(MODELS), {**environ, "CONFIG_ALLOWED_VARIABLE_PREFIXES": ""})
    assert any("allowed names start with none" in p.message for p in none.errors)


def test_guide_azure_api_key_reference_is_not_told_to_be_removed():
    text = group(MODELS).replace("${LAPIS_KEY}", "${AZURE_API_KEY}")
    environ = {"AZURE_API_KEY": CANARY, "AZURE_OPENAI_API_VERSION": "2024-02-01"}
    result = errors_of(text, environ)
    assert result.errors == []
    warned = " ".join(str(w) for w in result.warnings)
    assert "AZURE_API_KEY " not in warned  # the file uses it: keep it
    assert "AZURE_OPENAI_API_VERSION" in warned and "remove it" in warned  # unused: still reminded


# ---- additionalHeaders ---------------------------------------------------------------------------

FRAMING = ["Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer",
           "Proxy-Authorization", "Proxy-Connection", "proxy-anything", "Expect"]


@pytest.mark.parametrize("name", FRAMING)
def test_hop_by_hop_and_framing_headers_refused_with_their_line(name):
    text = group(f"additionalHeaders:\n  x-ok: fine\n  {name}: \"5\"\n" + MODELS)
    result = errors_of(text, ENV)
    assert [(p.path, p.line) for p in result.errors] == [(f"{ROOT}.additionalHeaders.{name}", 11)]
    assert "may not be set here" in result.errors[0].message


@pytest.mark.parametrize(
    "header,expected",
    [
        ('x-a: "v\\u0000w"', "visible ASCII"),
        ('x-a: "v\\u007fw"', "visible ASCII"),
        ('x-a: "caf\\u00e9"', "visible ASCII"),
        ("x-a: ${LAPIS_CTRL}", "visible ASCII characters, spaces and tabs, after resolving"),
    ],
)
def test_header_names_and_values_must_be_valid_tokens_and_text(header, expected):
    text = group(f"additionalHeaders:\n  {header}\n" + MODELS)
    result = errors_of(text, {**ENV, "LAPIS_CTRL": "a\x00b"})
    assert result.config is None
    assert any(p.line == 10 and expected in p.message for p in result.errors), [str(p) for p in result.errors]


# ---- endpoints -------------------------------------------------------------------------------------

REFUSED_URLS = [
    "http://gw.example.com/openai",
    "https://169.254.169.254/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:127.0.0.1]:8443/",
    "http://2130706433/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://127.0.0.1./",
    "https://10.0.0.5/",
    "https://172.16.3.4/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://[fd12:3456::1]/",
    "https://[fe80::1]/",
    "https://[::1]/",
    "https://0.0.0.0/",
    "https://localhost/",
    "https://api.localhost/",
    "https://[64:ff9b::a9fe:a9fe]/",
]


@pytest.mark.parametrize("field", ["endpoint", "baseURL"])
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_plain_http_and_private_or_metadata_hosts_refused(field, url):
    text = doc(f'apiKey: k\n{field}: "{url}"\ndeploymentName: dep\nversion: "2024-10-21"\n' + MODELS)
    result = errors_of(text, {"DEBUG": "1"})  # DEBUG changes nothing
    assert [(p.path, p.line) for p in result.errors] == [(f"{ROOT}.{field}", 6)], [str(p) for p in result.errors]
    assert "CONFIG_ALLOWED_ENDPOINT_HOSTS" in result.errors[0].message


def test_the_operator_allows_hosts_by_name_only():
    environ = {"CONFIG_ALLOWED_ENDPOINT_HOSTS": "127.0.0.1, LocalHost,[::1]"}
    for url in ("http://127.0.0.1:8001", "http://localhost:8001/x", "https://[::1]:9/", "http://127.0.0.1./"):
        text = doc(f'apiKey: k\nendpoint: "{url}"\ndeploymentName: dep\nversion: "2024-10-21"\n' + MODELS)
        assert errors_of(text, environ).errors == [], url
    for url in ("http://2130706433/", "http://127.1/", "https://169.254.169.254/", "http://[::ffff:7f00:1]/"):
        text = doc(f'apiKey: k\nendpoint: "{url}"\ndeploymentName: dep\nversion: "2024-10-21"\n' + MODELS)
        assert errors_of(text, environ).errors, url


def test_a_host_from_the_environment_is_checked_and_not_printed():
    text = doc('apiKey: k\nendpoint: "https://${LAPIS_HOST}/"\ndeploymentName: dep\nversion: "2024-10-21"\n' + MODELS)
    result = errors_of(text, {"LAPIS_HOST": "169.254.169.254"})
    assert [p.path for p in result.errors] == [f"{ROOT}.endpoint"]
    assert "169.254" not in str(result.errors[0])


def test_a_placeholder_host_is_checked_as_each_model_calls_it():
    text = doc(
        'apiKey: k\ninstanceName: "2130706433"\nbaseURL: "https://${INSTANCE_NAME}/openai"\n'
        'deploymentName: dep\nversion: "2024-10-21"\n' + MODELS
    )
    result = errors_of(text, {})
    assert [(p.path, p.line) for p in result.errors] == [(f"{ROOT}.baseURL", 7)]
    fine = doc(
        'apiKey: k\ninstanceName: contoso\nbaseURL: "https://${INSTANCE_NAME}.openai.azure.com/openai"\n'
        'deploymentName: dep\nversion: "2024-10-21"\n' + MODELS
    )
    assert errors_of(fine, {}).errors == []


@pytest.mark.parametrize("name", ["evil.example/x?", "a@b", "res:8080", "res#", "-res"])
def test_instance_name_is_a_resource_name(name):
    text = doc(f'apiKey: k\ninstanceName: "{name}"\ndeploymentName: dep\nversion: "2024-10-21"\n' + MODELS)
    result = errors_of(text, {})
    assert [(p.path, p.line) for p in result.errors] == [(f"{ROOT}.instanceName", 6)]


# ---- LibreChat keys -----------------------------------------------------------------------------


def test_title_method_structured_runs_as_functions():
    text = group(MODELS, endpoint="titleConvo: true\ntitleModel: gpt-4o\ntitleMethod: structured")
    result = errors_of(text, ENV)
    assert result.errors == []
    assert Registry(result.config).title_method == "functions"


def test_model_level_assistants_loads_with_a_warning():
    text = group("models:\n  gpt-4o:\n    assistants: true\n")
    result = errors_of(text, ENV)
    assert result.errors == []
    assert [(w.path, w.line) for w in result.warnings] == [(f"{ROOT}.models.gpt-4o.assistants", 11)]
    assert "no Assistants API" in result.warnings[0].message
    assert errors_of(group("models:\n  gpt-4o:\n    assistants: maybe\n"), ENV).errors


# ---- through the admin's load page and manage.py load_config --------------------------------

BAD_FILE = (
    "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n"
    "        apiKey: ${LAPIS_ADMIN_KEY}\n"
    "        endpoint: http://169.254.169.254/\n"                  # line 6
    "        deploymentName: dep\n"
    '        version: "2024-10-21"\n'
    "        additionalHeaders:\n"
    '          Content-Length: "0"\n'                            # line 10
    "        models:\n"
    "          gpt-4o:\n"
    '            label: "${LAPIS_SHOWN}"\n'                      # line 13
)
BAD_LINES = {6, 10, 13}
GOOD_FILE = (
    "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n        apiKey: ${LAPIS_ADMIN_KEY}\n"
    '        instanceName: res\n        deploymentName: dep\n        version: "2024-10-21"\n'
    "        models:\n          gpt-4o-mini: {label: Good Mini}\n"
)


@pytest.fixture
def active_good(db, monkeypatch):
    from apps.azure.registry import get_registry
    from apps.azure.services import load_and_activate

    monkeypatch.setenv("LAPIS_ADMIN_KEY", CANARY)
    monkeypatch.setenv("LAPIS_SHOWN", PG_CANARY)
    assert load_and_activate(text=GOOD_FILE, source="command").errors == []
    return get_registry().version_id


def test_admin_load_shows_each_error_with_its_line_and_keeps_the_active_config(client, active_good):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from apps.azure.models import ConfigVersion
    from apps.azure.registry import get_registry

    user = get_user_model().objects.create_user("ops", password="pw-123456789", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_configversion", "activate_configversion"]))
    client.force_login(user)
    page = client.post("/admin/azure/configversion/add/", {"text": BAD_FILE})
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('data-testid="config-error"') == 3
    for line in BAD_LINES:
        assert f'data-line="{line}"' in html
        assert f"(line {line}, col" in html
    assert "CONFIG_ALLOWED_ENDPOINT_HOSTS" in html and "hop-by-hop or framing header" in html
    assert "is not expanded in label" in html
    assert CANARY not in html and PG_CANARY not in html
    assert ConfigVersion.objects.count() == 1  # nothing stored
    assert get_registry().version_id == active_good
    models = client.get("/models/").content.decode()
    assert "Good Mini" in models and PG_CANARY not in models


def test_load_config_command_prints_line_numbered_errors_and_stores_nothing(tmp_path, capsys, active_good):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from apps.azure.models import ConfigVersion
    from apps.azure.registry import get_registry

    path = tmp_path / "bad.yaml"
    path.write_text(BAD_FILE)
    with pytest.raises(CommandError):
        call_command("load_config", str(path), "--activate")
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3
    assert {int(line.split("(line ")[1].split(",")[0]) for line in errors} == BAD_LINES
    assert CANARY not in out and PG_CANARY not in out
    assert ConfigVersion.objects.count() == 1
    assert ConfigVersion.objects.get(is_active=True).pk == get_registry().version_id == active_good


def test_allow_list_entries_that_could_never_match_are_system_check_errors(monkeypatch):
    from apps.azure.checks import check_config_allow_lists

    monkeypatch.setenv("CONFIG_ALLOWED_VARIABLE_PREFIXES", "LAPIS_,*,TEAM-")
    monkeypatch.setenv("CONFIG_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1,[::1],http://gw.local,127.0.0.1:8001,localhost")
    found = sorted((problem.id, problem.msg.split(" entry ")[1].split(" is ")[0]) for problem in check_config_allow_lists())
    assert found == [
        ("lapis.E002", "'*'"), ("lapis.E002", "'TEAM-'"),
        ("lapis.E003", "'127.0.0.1:8001'"), ("lapis.E003", "'http://gw.local'"),
    ]


def test_the_entra_guard_settings_are_system_checks(monkeypatch, settings):
    """Registered with manage.py check: a non-local identity endpoint under the guard is an
    error (every Entra call would fail), DEBUG without the guard a warning; the simulator's
    local endpoint, or production without the guard, passes."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from apps.azure.checks import check_entra_identity

    settings.ENTRA_LOCAL_IDENTITY_ONLY = True
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://169.254.169.254/metadata/identity/oauth2/token")
    with pytest.raises(SystemCheckError, match=r"lapis\.E004.*169\.254\.169\.254 is not a loopback"):
        call_command("check")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:8001/msi/token")
    assert check_entra_identity() == []
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    assert check_entra_identity() == [], "no endpoint at all: Entra models fail at call time, said there"
    settings.ENTRA_LOCAL_IDENTITY_ONLY, settings.DEBUG = False, True
    assert [problem.id for problem in check_entra_identity()] == ["lapis.W004"]
    settings.DEBUG = False
    assert check_entra_identity() == []
