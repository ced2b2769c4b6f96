"""Every rule of the model-group YAML (spec config.md): a valid and an invalid case each."""

import logging
from pathlib import Path
from textwrap import dedent, indent

import pytest

from apps.azure.config import ConfigFileError, parse_config, read_config_file
from apps.azure.registry import Registry, context_window_for, type_for, vision_for

EXAMPLES = Path("/work/shared/examples")
if not EXAMPLES.exists():
    EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TEAM_ENV = {
    "NORTH_KEY": "north-canary-7f3a",
    "WEST_KEY": "w-key",
    "GATEWAY_KEY": "g-key",
    "PHI_KEY": "p-key",
    # The example's own names, allowed by the operator (a full name is a prefix of itself).
    "CONFIG_ALLOWED_VARIABLE_PREFIXES": "NORTH_KEY,WEST_KEY,GATEWAY_KEY,PHI_KEY",
}
CANARY = "canary-Zq81-secret-value"
# Short names for the rule cases, allowed by prefix (NO covers the unset NOPE*, NOHOST, ...).
ENV = {"KEY": CANARY, "HOST": "example.org", "EMPTY": "", "CONFIG_ALLOWED_VARIABLE_PREFIXES": "KEY,HOST,EMPTY,NL,NO,SECRET_KEY,DATABASE_URL,REDIS_URL"}


def doc(group_body, *, endpoint="", extra_groups=""):
    """A config with one group (``group_body`` YAML under ``- group: g``)."""
    text = "endpoints:\n  azureOpenAI:\n"
    if endpoint:
        text += indent(dedent(endpoint).strip("\n"), "    ") + "\n"
    text += "    groups:\n      - group: g\n" + indent(dedent(group_body).strip("\n"), "        ") + "\n"
    if extra_groups:
        text += indent(dedent(extra_groups).strip("\n"), "      ") + "\n"
    return text


BASE = """
apiKey: ${KEY}
instanceName: res
version: "2024-10-21"
deploymentName: dep
models:
  gpt-4o: true
"""

# (name, yaml, expected substring of one error or None for valid)
CASES = [
    ("minimal valid", doc(BASE), None),
    ("unquoted date version is kept as text", doc(BASE.replace('"2024-10-21"', "2024-10-21")), None),
    ("syntax error", "endpoints:\n  azureOpenAI: [\n", "YAML syntax error"),
    ("python tag refused", doc(BASE) + "x: !!python/object/apply:os.system ['true']\n", "not allowed"),
    ("missing endpoints", "foo: 1\n", "missing endpoints.azureOpenAI"),
    ("groups required", "endpoints:\n  azureOpenAI:\n    titleConvo: false\n", "groups is required"),
    ("groups not empty", "endpoints:\n  azureOpenAI:\n    groups: []\n", "at least one group"),
    ("duplicate group", doc(BASE, extra_groups="- group: g\n  apiKey: k\n  instanceName: r\n  deploymentName: d\n  version: v\n  models: {gpt-4: true}"), 'duplicate group name "g"'),
    ("duplicate model across groups", doc(BASE, extra_groups="- group: h\n  apiKey: k\n  instanceName: r\n  deploymentName: d\n  version: v\n  models: {gpt-4o: true}"), 'already defined in group "g"'),
    ("duplicate key in a mapping", doc(BASE + "  gpt-4o: true\n"), "duplicate key"),
    ("apiKey required", doc(BASE.replace("apiKey: ${KEY}\n", "")), "apiKey is required"),
    ("entra needs no key", doc(BASE.replace("apiKey: ${KEY}", "authMode: entra")), None),
    ("bad authMode", doc(BASE + "authMode: password\n"), "authMode must be one of"),
    ("target required", doc(BASE.replace("instanceName: res\n", "")), "needs instanceName, endpoint or baseURL"),
    ("endpoint instead of instanceName", doc(BASE.replace("instanceName: res", "endpoint: https://r.cognitiveservices.azure.com")), None),
    ("baseURL instead of instanceName", doc(BASE.replace("instanceName: res", "baseURL: https://gw.example/x")), None),
    ("baseURL placeholder without instanceName", doc(BASE.replace("instanceName: res", 'baseURL: "https://${INSTANCE_NAME}.openai.azure.com/openai/deployments/${DEPLOYMENT_NAME}"')), "uses ${INSTANCE_NAME} but the group has no instanceName"),
    ("serverless needs baseURL", doc("apiKey: k\nserverless: true\nmodels:\n  phi-4: true\n"), "serverless group needs baseURL"),
    ("serverless valid", doc("apiKey: k\nserverless: true\nbaseURL: https://p.models.ai.azure.com/v1/chat/completions\nmodels:\n  phi-4: true\n"), None),
    ("true needs deploymentName", doc(BASE.replace("deploymentName: dep\n", "")), "true needs the group's deploymentName"),
    ("true needs version", doc(BASE.replace('version: "2024-10-21"\n', "")), "true needs the group's version"),
    ("model object inherits", doc(BASE.replace("gpt-4o: true", "gpt-4o: {label: Four}")), None),
    ("model object needs deployment", doc(BASE.replace("deploymentName: dep\n", "").replace("gpt-4o: true", "gpt-4o: {label: x}")), "needs deploymentName"),
    ("false model refused", doc(BASE.replace("gpt-4o: true", "gpt-4o: false")), "false is not a valid model value"),
    ("empty models refused", doc(BASE.replace("models:\n  gpt-4o: true", "models: {}")), "at least one model is required"),
    ("models required", doc(BASE.replace("models:\n  gpt-4o: true", "")), "models is required"),
    ("unset variable", doc(BASE.replace("${KEY}", "${NOPE_NOT_SET}")), "environment variable NOPE_NOT_SET is not set"),
    ("empty variable", doc(BASE.replace("${KEY}", "${EMPTY}")), "environment variable EMPTY is empty"),
    ("embedded variable in URL", doc(BASE.replace("instanceName: res", "endpoint: https://${HOST}/x")), None),
    ("embedded unset variable", doc(BASE.replace("instanceName: res", "endpoint: https://${NOHOST}/x")), "NOHOST is not set"),
    ("variable in a header", doc(BASE + "additionalHeaders:\n  x-key: \"k-${NOPE2}\"\n"), "NOPE2 is not set"),
    ("variable in addParams refused", doc(BASE + "addParams:\n  user: \"${KEY}\"\n"), "is not expanded in user"),
    ("Lapis secret refused", doc(BASE.replace("${KEY}", "${SECRET_KEY}")), "Lapis's own secrets"),
    ("DATABASE_URL refused", doc(BASE.replace("instanceName: res", "endpoint: ${DATABASE_URL}")), "Lapis's own secrets"),
    ("REDIS_URL refused", doc(BASE + "additionalHeaders:\n  x-r: ${REDIS_URL}\n"), "Lapis's own secrets"),
    ("baseURL not http", doc(BASE.replace("instanceName: res", "baseURL: ftp://gw.example/")), "absolute http(s) URL"),
    ("baseURL relative", doc(BASE.replace("instanceName: res", "baseURL: /openai")), "absolute http(s) URL"),
    ("endpoint with credentials", doc(BASE.replace("instanceName: res", "endpoint: https://u:p@r.example")), "user:password"),
    ("header api-key refused", doc(BASE + "additionalHeaders:\n  api-key: x\n"), "may not be set here"),
    ("header Host refused", doc(BASE + "additionalHeaders:\n  HOST: x\n"), "may not be set here"),
    ("header CRLF refused", doc(BASE + 'additionalHeaders:\n  x-a: "a\\r\\nb: c"\n'), "line break"),
    ("header value from env with newline", doc(BASE + "additionalHeaders:\n  x-a: ${NL}\n"), "line break"),
    ("header valid", doc(BASE + "additionalHeaders:\n  x-cost-center: research\n"), None),
    ("unknown key with suggestion", doc(BASE.replace("deploymentName", "deploymentname")), 'did you mean "deploymentName"'),
    ("unknown model key with suggestion", doc(BASE.replace("gpt-4o: true", "gpt-4o: {lable: x}")), 'did you mean "label"'),
    ("unknown endpoint key", doc(BASE, endpoint="titleConv: true"), 'did you mean "titleConvo"'),
    ("titleModel must exist", doc(BASE, endpoint="titleConvo: true\ntitleModel: gpt-4"), '"gpt-4" is not a configured chat model'),
    ("titleModel default must exist", doc(BASE, endpoint="titleConvo: true"), '"gpt-3.5-turbo" is not a configured'),
    ("titleModel ok", doc(BASE, endpoint="titleConvo: true\ntitleModel: gpt-4o"), None),
    ("titleModel unchecked when off", doc(BASE, endpoint="titleModel: nothing"), None),
    ("summaryModel must exist", doc(BASE, endpoint="summarize: true\nsummaryModel: nope"), '"nope" is not a configured chat model'),
    ("summaryModel defaults", doc(BASE, endpoint="summarize: true"), None),
    ("titleMethod choice", doc(BASE, endpoint="titleMethod: magic"), "titleMethod must be one of"),
    ("boolean type", doc(BASE, endpoint="plugins: yes please"), "plugins must be true or false"),
    ("assistants needs a group", doc(BASE, endpoint="assistants: true"), "no group says assistants: true"),
    ("contextWindow positive", doc(BASE.replace("gpt-4o: true", "gpt-4o: {contextWindow: -5}")), "contextWindow must be a positive"),
    ("type choice", doc(BASE.replace("gpt-4o: true", "gpt-4o: {type: video}")), "type must be one of"),
    ("vision boolean", doc(BASE.replace("gpt-4o: true", "gpt-4o: {vision: maybe}")), "vision must be true or false"),
    ("dropParams list", doc(BASE + "dropParams: temperature\n"), "dropParams must be a list"),
    ("too many aliases", "a: &a [x]\n" + "".join(f"b{i}: *a\n" for i in range(100)), "aliases"),
    ("too large", "x: " + "a" * (300 * 1024) + "\n", "larger than"),
    ("duplicate key names the first line", doc(BASE.replace("deploymentName: dep", "deploymentName: dep\ndeploymentName: other")), "deploymentName (line 9, col 9): duplicate key \"deploymentName\" (first on line 8)"),
    ("a key overrides one merged by <<", doc(BASE.replace("gpt-4o: true", "gpt-4o:\n    <<: {deploymentName: a, version: v}\n    deploymentName: b")), None),
    ("tab indentation", doc(BASE).replace("        instanceName", "\tinstanceName"), "not tabs"),
    ("header name with a variable", doc(BASE + "additionalHeaders:\n  x-${KEY}: v\n"), "header name can't hold ${VAR}"),
    ("non-string key", doc(BASE.replace("gpt-4o: true", "gpt-4o: true\n  [a, b]: true")), "keys must be plain names"),
    ("alias inside itself", doc(BASE + "addParams: &p {x: *p}\n"), "an alias refers to a mapping or list that contains it"),
    ("deep nesting", "x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
]


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_rules(name, text, expected):
    environ = {**ENV, "NL": "a\nb"}
    result = parse_config(text, environ=environ)
    messages = [str(p) for p in result.errors]
    if expected is None:
        assert messages == []
        assert result.config is not None
    else:
        assert any(expected in m for m in messages), messages
        assert result.config is None
    for message in messages + [str(w) for w in result.warnings]:
        assert CANARY not in message


def test_broken_example_reports_exact_error_set():
    # broken.expected.md expects "is not set": the operator allows the name, it is just unset.
    allowed = {"CONFIG_ALLOWED_VARIABLE_PREFIXES": "UNSET_"}
    result = parse_config((EXAMPLES / "broken.yaml").read_text(), environ=allowed)
    got = {(p.path, p.line) for p in result.errors}
    root = "endpoints.azureOpenAI"
    assert got == {
        (f"{root}.titleModel", 5),
        (f"{root}.groups[0].apikey", 8),
        (f"{root}.groups[0]", 7),
        (f"{root}.groups[0].models.gpt-4o", 12),
        (f"{root}.groups[1].group", 13),
        (f"{root}.groups[1].apiKey", 14),
        (f"{root}.groups[1].models.gpt-4o", 19),
        (f"{root}.groups[1].models.gpt-4o-mini", 21),
        (f"{root}.groups[2]", 22),
        (f"{root}.groups[3]", 27),
        (f"{root}.groups[3].additionalHeaders.Authorization", 32),
        (f"{root}.groups[3].models", 33),
    }
    text = "\n".join(str(p) for p in result.errors)
    for phrase in [
        '"gpt-3.5-turbo" is not a configured chat model (titleConvo is on)',
        'unknown key "apikey" in group "alpha" (did you mean "apiKey"?)',
        "apiKey is required",
        "true needs the group's deploymentName",
        'duplicate group name "alpha"',
        "environment variable UNSET_VARIABLE_FOR_TEST is not set",
        'model "gpt-4o" is already defined in group "alpha" (groups[0])',
        "false is not a valid model value",
        "a serverless group needs baseURL",
        "needs instanceName, endpoint or baseURL",
        "may not be set here",
        "at least one model is required",
    ]:
        assert phrase in text
    assert "stolen" not in text and "plain-inline-key" not in text
    assert result.config is None
    assert all(p.column >= 1 for p in result.errors)


def test_team_example_loads_with_warnings_for_other_sections():
    result = parse_config((EXAMPLES / "team.yaml").read_text(), environ=TEAM_ENV)
    assert result.errors == []
    ignored = {p.path for p in result.warnings}
    assert {"version", "cache", "interface"} <= ignored
    registry = Registry(result.config)
    assert [spec.key for spec in registry.all_models()] == [
        "gpt-4o", "gpt-4o-mini", "dall-e-3", "gpt-4.1", "o3-mini", "gpt-35-turbo", "phi-4", "gpt-4o-2024-08-06",
    ]
    assert [s.key for s in registry.image_models()] == ["dall-e-3"]
    assert registry.get("gpt-4o").label == "GPT-4o (EU)"
    assert registry.title_model.key == "gpt-4o-mini" and registry.title_method == "functions"
    assert registry.get("gpt-4o-2024-08-06").auth_mode == "entra"
    assert registry.get("gpt-4o-2024-08-06").context_window == 128000
    assert registry.get("phi-4").serverless and registry.get("phi-4").context_window == 4096
    assert "north-canary-7f3a" not in repr(result.config) and "north-canary-7f3a" not in str(registry.all_models())


def test_placeholders_replaced_at_every_occurrence_and_env_name_warned():
    text = doc(
        'apiKey: k\ninstanceName: inst\ndeploymentName: dep\nversion: "2024-06-01"\n'
        'baseURL: "https://gw.example/${INSTANCE_NAME}/a/${DEPLOYMENT_NAME}/${INSTANCE_NAME}"\nmodels:\n  gpt-4o: true\n'
    )
    result = parse_config(text, environ={"INSTANCE_NAME": "real-env"})
    assert result.errors == []
    assert any("placeholder" in w.message for w in result.warnings)
    spec = Registry(result.config).get("gpt-4o")
    assert spec.target.base_url.reveal() == "https://gw.example/inst/a/dep/inst"


def test_partial_env_strings_resolve_in_urls_headers_and_params():
    text = doc(
        'apiKey: "pre-${KEY}-post"\nendpoint: "https://${HOST}:8443/base"\ndeploymentName: dep\n'
        'version: "2024-10-21"\nadditionalHeaders:\n  x-team: "team-${HOST}"\naddParams:\n  user: "u-HOST"\n'
        "models:\n  gpt-4o: true\n"
    )
    result = parse_config(text, environ=ENV)
    assert result.errors == []
    group = result.config.groups[0]
    assert group.api_key.reveal() == f"pre-{CANARY}-post"
    assert group.api_key.display == "pre-${KEY}-post"
    assert group.endpoint.reveal() == "https://example.org:8443/base"
    assert dict(group.headers)["x-team"].reveal() == "team-example.org"
    assert group.add_params == {"user": "u-HOST"}
    assert CANARY not in repr(result.config)


def test_legacy_env_vars_and_librechat_keys_warn():
    text = doc(BASE, endpoint="titleTiming: false\nstreamRate: 30")
    result = parse_config(text, environ={**ENV, "AZURE_API_KEY": "x", "PLUGINS_USE_AZURE": "true"})
    assert result.errors == []
    messages = " ".join(str(w) for w in result.warnings)
    assert "AZURE_API_KEY" in messages and "PLUGINS_USE_AZURE" in messages
    assert "titleTiming" in messages and "streamRate" in messages and "ignores" in messages


def test_inline_key_is_masked_and_never_in_errors():
    text = doc(BASE.replace("${KEY}", CANARY) + "foo: bar\n")
    result = parse_config(text, environ={})
    assert result.errors and all(CANARY not in str(p) for p in result.errors)
    ok = parse_config(doc(BASE.replace("${KEY}", CANARY)), environ={})
    assert CANARY not in repr(ok.config)
    assert ok.config.groups[0].api_key.display != CANARY


def test_syntax_error_does_not_echo_the_line():
    result = parse_config(f"endpoints:\n  azureOpenAI:\n    groups: [{{apiKey: {CANARY}\n", environ={})
    assert result.errors and result.errors[0].line >= 3
    assert CANARY not in str(result.errors[0])


@pytest.mark.parametrize(
    "key,tokens",
    [
        ("gpt-4o-2024-08-06", 128000), ("GPT-4O-MINI", 128000), ("gpt-4", 8192), ("gpt-4-32k", 32768),
        ("gpt-35-turbo", 16385), ("gpt-3.5-turbo-0613", 4096), ("gpt-4.1-mini", 1047576), ("o1", 200000),
        ("o1-mini", 128000), ("o3-mini", 200000), ("gpt-5-nano", 400000), ("mistral-large-2407", 128000),
        ("llama-3.1-70b", 128000), ("llama-2-13b", 4096), ("phi-4", 4096), ("gpt-4-turbo", 128000),
    ],
)
def test_context_windows_longest_substring(key, tokens):
    assert context_window_for(key) == tokens


@pytest.mark.parametrize(
    "key,vision",
    [
        ("gpt-4o", True), ("gpt-4-turbo", True), ("gpt-4-turbo-preview", False), ("o1", True),
        ("o1-mini", False), ("gpt-4.1", True), ("gpt-5-mini", True), ("o4-mini", True),
        ("gpt-35-turbo", False), ("gpt-4", False), ("phi-4", False),
        # text-only reasoning models: o1-preview, o1-mini, o3-mini; o3, o3-pro, o4-mini see images
        ("o3-mini", False), ("o3-mini-2025-01-31", False), ("o1-preview", False),
        ("o1-mini-2024-09-12", False), ("o3", True), ("o3-pro", True), ("o1-2024-12-17", True),
    ],
)
def test_vision_by_name(key, vision):
    assert vision_for(key) is vision


def test_types_and_overrides():
    assert [type_for(k) for k in ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-4o")] == ["image", "image", "image", "chat"]
    text = doc(BASE.replace("gpt-4o: true", "gpt-4o: {vision: false, contextWindow: 1200, maxOutput: 50, type: completion, label: Small}"))
    spec = Registry(parse_config(text, environ=ENV).config).get("gpt-4o")
    assert (spec.vision, spec.context_window, spec.max_output, spec.type, spec.label) == (False, 1200, 50, "completion", "Small")


def test_simulated_flag_from_endpoint_extension():
    assert Registry(parse_config(doc(BASE, endpoint="simulated: true"), environ=ENV).config).get("gpt-4o").simulated
    assert not Registry(parse_config("# simulated\n" + doc(BASE), environ=ENV).config).get("gpt-4o").simulated


def test_no_secret_in_logs(caplog, db):
    from apps.azure.registry import registry_from_text

    caplog.set_level(logging.DEBUG)
    registry_from_text(doc(BASE.replace("${KEY}", "${KEY} ${NOT_HERE_X}")), environ=ENV)
    assert "NOT_HERE_X" in caplog.text
    assert CANARY not in caplog.text


def test_read_config_file_says_what_and_which_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(doc(BASE), encoding="utf-8")
    assert read_config_file(good) == doc(BASE)
    cases = {
        "missing.yaml": (None, "can't be read"),
        "latin1.yaml": (b"x: caf\xe9\n", "is not UTF-8 text"),
        "huge.yaml": (b"#" * (10 * 1024 * 1024), "is larger than 256 KB"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ConfigFileError) as raised:
            read_config_file(path)
        assert expected in str(raised.value) and name in str(raised.value)
