"""Parse and validate the model-group YAML (LibreChat's ``endpoints.azureOpenAI`` section).

``parse_config(text, environ=...)`` never raises for bad input: it returns a ``LoadResult`` whose
``errors`` lists every problem at once (path, line, column, message) and whose ``config`` is set
only when there is none. Rules are those of docs/spec config.md.

Secrets: ``${VAR}`` references are resolved from ``environ`` into ``Secret`` objects that keep the
value in memory only; their ``repr``/``str`` show the reference as written (``${NORTH_KEY}``) or a
mask, so a config can be logged or rendered without leaking a key. No message ever holds a value
from the environment, and messages about strings never repeat the string (it may be an inline key).
"""

import difflib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import yaml
from django.db import DatabaseError

from apps.azure.pricing import CURRENCY, Price

MAX_BYTES = 256 * 1024
MAX_ALIASES = 64
MAX_NODES = 50_000
MAX_DEPTH = 64  # nesting levels; deeper YAML would exhaust Python's recursion limit
ROOT = "endpoints.azureOpenAI"

ENV_REF = re.compile(r"\$\{([^}]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDERS = ("INSTANCE_NAME", "DEPLOYMENT_NAME")
VARIABLE_PREFIXES_ENV = "CONFIG_ALLOWED_VARIABLE_PREFIXES"
DEFAULT_VARIABLE_PREFIXES = ("LAPIS_", "AZURE_")
ENDPOINT_HOSTS_ENV = "CONFIG_ALLOWED_ENDPOINT_HOSTS"
# Where ${VAR} is expanded: secrets and the parts the upstream URL is built from. Never display
# fields (label, group, model keys) nor request bodies (addParams), which users can see.
VARIABLE_FIELDS = "apiKey, instanceName, endpoint, baseURL and additionalHeaders values"
# Lapis's own secrets: a YAML that could reference them would send them to any upstream host.
FORBIDDEN_VARS = frozenset(
    {
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_PASSWORD",
        "IDENTITY_HEADER",
        "MSI_SECRET",
        "LAPIS_SECRETS_KEYS",
    }
)
# ``${secret:NAME}``: a key typed in the admin (apps/azure/secrets.py), instead of the environment.
SECRET_REF_PREFIX = "secret:"
LEGACY_VARS = (
    "AZURE_API_KEY",
    "AZURE_OPENAI_API_INSTANCE_NAME",
    "AZURE_OPENAI_API_DEPLOYMENT_NAME",
    "AZURE_OPENAI_API_VERSION",
    "AZURE_OPENAI_MODELS",
    "AZURE_USE_MODEL_AS_DEPLOYMENT_NAME",
    "AZURE_OPENAI_DEFAULT_MODEL",
    "AZURE_OPENAI_BASEURL",
    "PLUGINS_USE_AZURE",
)
LIBRECHAT_ONLY = frozenset(
    {"streamRate", "titlePrompt", "titlePromptTemplate", "titleTiming", "titleEndpoint", "customOrder"}
)
ENDPOINT_KEYS = (
    "groups",
    "titleConvo",
    "titleModel",
    "titleMethod",
    "summarize",
    "summaryModel",
    "plugins",
    "assistants",
    "simulated",
    "pools",
)
# A pool (Lapis extension, endpoints.azureOpenAI.pools.<name>): one model name served by several
# models of the file (e.g. one per region), tried in order with failover (apps/azure/pools.py).
POOL_KEYS = ("members", "label", "access")
GROUP_KEYS = (
    "group",
    "apiKey",
    "instanceName",
    "endpoint",
    "deploymentName",
    "version",
    "baseURL",
    "additionalHeaders",
    "serverless",
    "addParams",
    "dropParams",
    "forcePrompt",
    "assistants",
    "authMode",
    "access",
    "useResponsesApi",
    "models",
)
MODEL_KEYS = (
    "deploymentName",
    "version",
    "label",
    "contextWindow",
    "maxOutput",
    "vision",
    "type",
    "access",
    "assistants",
    "useResponsesApi",
    "pricing",
)
PRICING_KEYS = ("input", "output", "cachedInput", "currency")
FORBIDDEN_HEADERS = frozenset({"api-key", "authorization", "host"})
# Hop-by-hop and message-framing headers: set by the HTTP client for this one connection and
# body; a configured value would desynchronise a proxy in between (request smuggling).
FRAMING_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "expect",
        "http2-settings",
    }
)
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# RFC 9110 field-value: visible ASCII, space and tab (obs-text is refused: httpx sends ASCII).
HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
# Azure resource names: letters, digits and hyphens (dots for the odd custom domain prefix).
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*$")
TITLE_METHODS = ("completion", "functions", "structured")
MODEL_TYPES = ("chat", "completion", "image", "embedding", "transcription", "speech")
MERGE_TAG = "tag:yaml.org,2002:merge"
SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "merge", "binary")
)


@dataclass(frozen=True)
class Problem:
    """One error or warning: where (YAML path, 1-based line and column) and what."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self):
        where = f"{self.path} " if self.path else ""
        return f"{where}(line {self.line}, col {self.column}): {self.message}"


class Secret:
    """A string resolved from the environment (or an inline key), shown only as ``display``."""

    __slots__ = ("_value", "display")

    def __init__(self, value, display):
        self._value = value
        self.display = display

    def reveal(self):
        return self._value

    def __repr__(self):
        return f"Secret({self.display!r})"

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self):
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("Secret values are not pickled")


@dataclass(frozen=True)
class ModelConfig:
    key: str
    group: str
    deployment: str | None
    version: str | None
    label: str | None
    context_window: int | None
    max_output: int | None
    vision: bool | None
    type: str | None
    line: int
    access: tuple | None = None  # Lapis group names that may use it; None: the group's rule
    # Streams through /openai/v1/responses instead of chat/completions (LibreChat's
    # ``useResponsesApi``; the model's own setting wins over its group's).
    use_responses_api: bool = False
    # What its tokens cost (apps.azure.pricing.Price); None: the built-in table, or no price.
    pricing: object = None


@dataclass(frozen=True)
class GroupConfig:
    name: str
    api_key: Secret | None
    instance_name: str | None
    endpoint: Secret | None
    base_url: Secret | None
    headers: tuple = ()  # ((name, Secret), ...)
    serverless: bool = False
    add_params: dict = field(default_factory=dict, repr=False)
    drop_params: tuple = ()
    force_prompt: bool = False
    assistants: bool = False
    auth_mode: str = "apiKey"
    models: tuple = ()
    access: tuple | None = None  # Lapis group names that may use its models; None: everyone
    use_responses_api: bool = False


@dataclass(frozen=True)
class PoolConfig:
    """``pools.<name>``: users pick ``name``; answers go to ``members`` (model keys, in order)."""

    name: str
    members: tuple
    label: str | None
    access: tuple | None  # None: the members' common rule
    line: int


@dataclass(frozen=True)
class Config:
    groups: tuple
    title_convo: bool = False
    title_model: str = "gpt-3.5-turbo"
    title_method: str = "completion"
    summarize: bool = False
    summary_model: str | None = None
    plugins: bool = False
    assistants: bool = False
    simulated: bool = False
    pools: tuple = ()  # PoolConfig, in file order

    def models(self):
        return [model for group in self.groups for model in group.models]


@dataclass
class LoadResult:
    config: Config | None
    errors: list
    warnings: list

    @property
    def ok(self):
        return self.config is not None and not self.errors


class _LimitExceeded(Exception):
    def __init__(self, message, mark):
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader that composes a node tree (for line marks) and caps alias use and nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self.alias_count = 0
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                event = self.peek_event()
                raise _LimitExceeded(f"more than {MAX_ALIASES} aliases", event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _LimitExceeded(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mark(node):
    return node.start_mark.line + 1, node.start_mark.column + 1


def suggest(word, choices):
    lowered = {choice.lower(): choice for choice in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return close[0] if close else None


def _quote(text):
    return '"' + str(text)[:80] + '"'


def allowed_variable_prefixes(environ):
    """The name prefixes a ``${VAR}`` may use: ``CONFIG_ALLOWED_VARIABLE_PREFIXES`` (comma-separated;
    set but empty allows none), else LAPIS_ and AZURE_. A full name is a prefix of itself."""
    raw = environ.get(VARIABLE_PREFIXES_ENV)
    if raw is None:
        return DEFAULT_VARIABLE_PREFIXES
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _normal_host(host):
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def allowed_endpoint_hosts(environ):
    """Hosts the operator allows over plain http or on a private address (``CONFIG_ALLOWED_ENDPOINT_HOSTS``,
    comma-separated, compared literally after lower-casing: allowing 127.0.0.1 does not allow 127.1)."""
    raw = environ.get(ENDPOINT_HOSTS_ENV) or ""
    return frozenset(_normal_host(item) for item in raw.split(",") if item.strip())


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address):
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible)."""
    found = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [embedded for embedded in found if embedded is not None]


def non_public_reason(host):
    """Why ``host`` (a URL's host, lower-case, no brackets) is not a public address, or None.

    Literal addresses only, in every spelling a resolver accepts (``127.1``, ``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, IPv4 inside IPv6) plus the ``localhost`` names; other DNS
    names are not resolved (a load-time lookup proves nothing about the address used later)."""
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback name"
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return "not a valid IPv6 address"
        candidates = [address, *_embedded_ipv4(address)]
    elif NUMERIC_HOST.match(host):
        try:
            candidates = [ipaddress.IPv4Address(socket.inet_aton(host))]
        except OSError:
            return "a numeric host that is not a valid IPv4 address"
    else:
        return None
    if all(candidate.is_global for candidate in candidates):
        return None
    return "a loopback, private, link-local, metadata or otherwise non-public address"


class _Validator:
    def __init__(self, loader, environ, secrets=None):
        self.loader = loader
        self.environ = environ
        self._secrets = secrets  # {name: value}, or a callable giving it, read at first use
        self.prefixes = allowed_variable_prefixes(environ)
        self.allowed_hosts = allowed_endpoint_hosts(environ)
        self.referenced = set()  # environment variables the file uses
        self.errors = []
        self.warnings = []
        self.nodes_seen = 0
        self.own_keys = {}  # id(mapping node) -> ids of its own key nodes (not merged in by <<)

    # ---- reporting -------------------------------------------------------------------------
    def error(self, path, node, message):
        line, column = _mark(node)
        self.errors.append(Problem(path, line, column, message))

    def warn(self, path, node, message):
        line, column = _mark(node)
        self.warnings.append(Problem(path, line, column, message))

    # ---- node helpers ----------------------------------------------------------------------
    def mapping(self, node, path, what="a mapping"):
        """Ordered {key: (key_node, value_node)} of a mapping node, or None (error reported)."""
        if not isinstance(node, yaml.MappingNode):
            self.error(path, node, f"must be {what}")
            return None
        # flatten_mapping rewrites the node in place (merged pairs first), and an aliased node
        # comes here again: remember which keys the mapping itself wrote, before the first flatten.
        own = self.own_keys.setdefault(id(node), {id(k) for k, _ in node.value if k.tag != MERGE_TAG})
        self.loader.flatten_mapping(node)
        items = {}
        for key_node, value_node in node.value:
            self.nodes_seen += 1
            key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if isinstance(key, bool) or not isinstance(key, (str, int, float)):
                self.error(path, key_node, "keys must be plain names (not true/false, null, a list or a mapping)")
                continue
            key = str(key)
            earlier = items.get(key)
            if earlier and id(key_node) in own and id(earlier[0]) in own:
                line = earlier[0].start_mark.line + 1
                self.error(f"{path}.{key}", key_node, f"duplicate key {_quote(key)} (first on line {line})")
                continue
            items[key] = (key_node, value_node)  # a key of the mapping overrides one merged by <<
        return items

    def scalar(self, node, path):
        if node.tag not in SAFE_TAGS:
            return None
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # e.g. an unquoted version 2024-10-21 stays the text written
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            self.error(path, node, "value could not be read")
            return None

    def plain(self, node, path, depth=0):
        """A scalar or a nested structure of plain values (for addParams)."""
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES:
            raise _LimitExceeded("document too large after alias expansion", node.start_mark)
        if depth > MAX_DEPTH:  # only an alias that refers to its own ancestor gets this deep
            raise _LimitExceeded("an alias refers to a mapping or list that contains it", node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node, path)
            if isinstance(value, str):
                return self.literal(value, path, node)
            return value
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
        items = self.mapping(node, path) or {}
        return {key: self.plain(value, f"{path}.{key}", depth + 1) for key, (_, value) in items.items()}

    def check_keys(self, items, allowed, path, where):
        for key, (key_node, _) in items.items():
            if key in allowed:
                continue
            if key in LIBRECHAT_ONLY:
                self.warn(f"{path}.{key}", key_node, f"{_quote(key)} is a LibreChat setting that Lapis ignores")
                continue
            hint = suggest(key, allowed)
            extra = f' (did you mean "{hint}"?)' if hint else ""
            self.error(f"{path}.{key}", key_node, f"unknown key {_quote(key)} in {where}{extra}")

    def string(self, items, key, path, *, variables=False, raw=False):
        """The non-empty string at ``key``. ``variables``: ``${VAR}`` expanded (a VARIABLE_FIELDS
        field); ``raw``: returned as written (the caller expands); else a ``${`` is an error."""
        if key not in items:
            return None
        _, node = items[key]
        value = self.scalar(node, f"{path}.{key}") if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "version":
            value = node.value
        if not isinstance(value, str) or not value.strip():
            self.error(f"{path}.{key}", node, f"{key} must be a non-empty string")
            return None
        if raw:
            return value
        if variables:
            return self.resolve(value, f"{path}.{key}", node)
        return self.literal(value, f"{path}.{key}", node)

    def literal(self, text, path, node, *, what=None):
        """``text`` unless it holds ``${``: outside VARIABLE_FIELDS nothing is expanded, and a
        reference kept as text would show its name (or a user's guess at one) to every user."""
        if "${" not in text:
            return text
        where = what or (path.rsplit(".", 1)[-1] if path else "this field")
        self.error(path, node, f"${{...}} is not expanded in {where}: environment variables are allowed only in {VARIABLE_FIELDS}")
        return None

    def boolean(self, items, key, path, default=False):
        if key not in items:
            return default
        _, node = items[key]
        value = self.scalar(node, f"{path}.{key}") if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            self.error(f"{path}.{key}", node, f"{key} must be true or false")
            return default
        return value

    def integer(self, items, key, path):
        if key not in items:
            return None
        _, node = items[key]
        value = self.scalar(node, f"{path}.{key}") if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.error(f"{path}.{key}", node, f"{key} must be a positive whole number of tokens")
            return None
        return value

    def choice(self, items, key, path, choices, default):
        if key not in items:
            return default
        _, node = items[key]
        value = self.scalar(node, f"{path}.{key}") if isinstance(node, yaml.ScalarNode) else None
        if value not in choices:
            options = ", ".join(choices)
            self.error(f"{path}.{key}", node, f"{key} must be one of: {options}")
            return default
        return value

    # ---- environment -----------------------------------------------------------------------
    def resolve(self, text, path, node, *, placeholders=False):
        """``text`` with every ``${VAR}`` replaced; None (errors reported) if any is unusable."""
        ok = True

        def replace(match):
            nonlocal ok
            name = match.group(1)
            if placeholders and name in PLACEHOLDERS:
                if self.environ.get(name):
                    self.warn(
                        path,
                        node,
                        f"${{{name}}} here is the placeholder for the selected model, "
                        f"not the environment variable {name} (which is set)",
                    )
                return match.group(0)
            if name.startswith(SECRET_REF_PREFIX):
                value = self.stored_secret(name[len(SECRET_REF_PREFIX):], path, node)
                ok = ok and value is not None
                return value or ""
            if not ENV_NAME.match(name):
                self.error(path, node, f"${{{name[:40]}}} is not a valid environment variable reference")
                ok = False
                return ""
            if name in FORBIDDEN_VARS:
                self.error(path, node, f"environment variable {name} is one of Lapis's own secrets and can't be referenced")
                ok = False
                return ""
            if not name.startswith(self.prefixes):
                allowed = ", ".join(self.prefixes) or "none"
                self.error(path, node, f"environment variable {name} may not be referenced: allowed names start with {allowed} ({VARIABLE_PREFIXES_ENV})")
                ok = False
                return ""
            self.referenced.add(name)
            value = self.environ.get(name)
            if value is None:
                self.error(path, node, f"environment variable {name} is not set")
                ok = False
                return ""
            if value == "":
                self.error(path, node, f"environment variable {name} is empty")
                ok = False
                return ""
            return value

        resolved = ENV_REF.sub(replace, text)
        if not ok:
            return None
        leftover = resolved
        if placeholders:
            for name in PLACEHOLDERS:
                leftover = leftover.replace("${" + name + "}", "")
        if "${" in leftover:  # an unclosed "${", or a value that itself holds "${"
            self.error(path, node, "still holds ${ after its environment variables are expanded (an unclosed ${, or a variable whose value holds one)")
            return None
        return resolved

    def stored_secret(self, name, path, node):
        """The value of stored key ``name`` (Admin → Stored keys), or None (error reported)."""
        from apps.azure.secrets import KEY_NAME, SecretUnreadable

        if not KEY_NAME.match(name):
            self.error(path, node, f"${{secret:{name[:40]}}} is not a valid stored key name (letters, digits, _)")
            return None
        if callable(self._secrets):
            try:
                self._secrets = self._secrets()
            except DatabaseError:
                self._secrets = {}
                self.error(path, node, "stored keys can't be read (is the database migrated?)")
                return None
        value = (self._secrets or {}).get(name)
        if value is None:
            self.error(path, node, f"stored key {name} is not set: add it in the admin (Stored keys) or use an environment variable")
            return None
        if isinstance(value, SecretUnreadable):
            self.error(path, node, str(value))
            return None
        return value

    # ---- sections --------------------------------------------------------------------------
    def scan(self, root):
        """Refuse non-standard tags anywhere (ignored sections too) and cap the tree size."""
        stack, seen = [root], set()
        while stack:
            node = stack.pop()
            self.nodes_seen += 1
            if self.nodes_seen > MAX_NODES:
                raise _LimitExceeded("document too large after alias expansion", node.start_mark)
            if node.tag not in SAFE_TAGS:
                line, column = _mark(node)
                self.errors.append(Problem("", line, column, f"tag {node.tag} is not allowed (safe YAML only)"))
            if id(node) in seen or isinstance(node, yaml.ScalarNode):
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                stack.extend(n for pair in node.value for n in pair)
            else:
                stack.extend(node.value)
        self.nodes_seen = 0

    def document(self, root):
        self.scan(root)
        if self.errors:
            return None
        items = self.mapping(root, "", "a mapping with an endpoints section")
        if items is None:
            return None
        for key, (key_node, _) in items.items():
            if key != "endpoints":
                self.warn(key, key_node, f"top-level section {_quote(key)} is ignored (Lapis reads only endpoints.azureOpenAI)")
        if "endpoints" not in items:
            self.error("", root, "missing endpoints.azureOpenAI section")
            return None
        endpoints = self.mapping(items["endpoints"][1], "endpoints")
        if endpoints is None:
            return None
        for key, (key_node, _) in endpoints.items():
            if key != "azureOpenAI":
                hint = suggest(key, ["azureOpenAI"])
                if hint:
                    self.error(f"endpoints.{key}", key_node, f'unknown key {_quote(key)} (did you mean "azureOpenAI"?)')
                else:
                    self.warn(f"endpoints.{key}", key_node, f"endpoint {_quote(key)} is ignored (Lapis reads only azureOpenAI)")
        if "azureOpenAI" not in endpoints:
            self.error("endpoints", items["endpoints"][1], "missing azureOpenAI section")
            return None
        return self.endpoint(endpoints["azureOpenAI"][1])

    def endpoint(self, node):
        items = self.mapping(node, ROOT)
        if items is None:
            return None
        self.check_keys(items, ENDPOINT_KEYS, ROOT, "endpoints.azureOpenAI")
        settings = {
            "title_convo": self.boolean(items, "titleConvo", ROOT),
            "summarize": self.boolean(items, "summarize", ROOT),
            "plugins": self.boolean(items, "plugins", ROOT),
            "assistants": self.boolean(items, "assistants", ROOT),
            "simulated": self.boolean(items, "simulated", ROOT),
            "title_method": self.title_method(items),
        }
        title_model = self.string(items, "titleModel", ROOT)
        summary_model = self.string(items, "summaryModel", ROOT)
        groups = []
        if "groups" not in items:
            self.error(ROOT, node, "groups is required (a list with at least one group)")
        else:
            groups_node = items["groups"][1]
            if not isinstance(groups_node, yaml.SequenceNode) or not groups_node.value:
                self.error(f"{ROOT}.groups", groups_node, "groups must be a list with at least one group")
            else:
                groups = self.groups(groups_node)
        models = {model.key: model for group in groups if group for model in group.models}
        usable = {key for key, model in models.items() if model.type not in ("image", "embedding", "transcription", "speech")}
        pools = self.pools(items, groups) if "pools" in items else ()
        usable |= {pool.name for pool in pools}
        if settings["title_convo"]:
            title_model = title_model or "gpt-3.5-turbo"
            if models and title_model not in usable:
                where = items.get("titleModel", items.get("titleConvo"))[1]
                self.error(
                    f"{ROOT}.titleModel",
                    where,
                    f"{_quote(title_model)} is not a configured chat model (titleConvo is on)",
                )
        if settings["summarize"] and summary_model and models and summary_model not in usable:
            self.error(
                f"{ROOT}.summaryModel",
                items["summaryModel"][1],
                f"{_quote(summary_model)} is not a configured chat model (summarize is on)",
            )
        if not summary_model and groups and groups[0] and groups[0].models:
            summary_model = groups[0].models[0].key
        if settings["assistants"] and groups and not any(g and g.assistants for g in groups):
            self.error(f"{ROOT}.assistants", items["assistants"][1], "assistants is on, but no group says assistants: true")
        if self.errors:
            return None
        return Config(
            groups=tuple(groups),
            title_model=title_model or "gpt-3.5-turbo",
            summary_model=summary_model,
            pools=tuple(pools),
            **settings,
        )

    def pools(self, items, groups):
        """``pools:`` name → ``{members: [model keys], label, access}`` (or just the list).

        LibreChat ignores the key (its azureOpenAI schema drops unknown keys), and every member
        is an ordinary model of the file, so the same file still works there, model by model."""
        node = items["pools"][1]
        pools_items = self.mapping(node, f"{ROOT}.pools")
        if pools_items is None:
            return []
        models = {}
        for group in groups:
            for model in (group.models if group else ()):
                models[model.key] = (group, model)
        pooled, result = {}, []
        for name, (key_node, value_node) in pools_items.items():
            path = f"{ROOT}.pools.{name}"
            if self.literal(name, path, key_node, what="a pool name") is None:
                continue
            if name in models:
                self.error(path, key_node, f'pool "{name}" has the name of a model in group '
                           f'"{models[name][0].name}": a pool needs a name of its own')
                continue
            pool = self.pool(name, key_node, value_node, path, models, pooled)
            if pool:
                result.append(pool)
        return result

    def pool(self, name, key_node, node, path, models, pooled):
        label, access, members_node = None, None, node
        if isinstance(node, yaml.MappingNode):
            pool_items = self.mapping(node, path)
            self.check_keys(pool_items, POOL_KEYS, path, f'pool "{name}"')
            label = self.string(pool_items, "label", path)
            access = self.access(pool_items, path)
            if "members" not in pool_items:
                self.error(path, node, f'pool "{name}" needs members (a list of model keys)')
                return None
            members_node = pool_items["members"][1]
        mpath = f"{path}.members"
        if not isinstance(members_node, yaml.SequenceNode) or len(members_node.value) < 2:
            self.error(mpath, members_node, "members must be a list of at least two model keys, "
                       "like members: [gpt-4o-eu, gpt-4o-us]")
            return None
        keys, ok = [], True
        for index, member_node in enumerate(members_node.value):
            where = f"{mpath}[{index}]"
            key = self.scalar(member_node, where) if isinstance(member_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.error(where, member_node, "a member is a model key of this file")
                ok = False
            elif self.literal(key, where, member_node, what="a model key") is None:
                ok = False
            elif key not in models:
                hint = suggest(key, list(models))
                self.error(where, member_node, f'"{key}" is not a model of this file'
                           + (f' (did you mean "{hint}"?)' if hint else ""))
                ok = False
            elif key in keys:
                self.error(where, member_node, f'"{key}" is listed twice in pool "{name}"')
                ok = False
            elif key in pooled:
                self.error(where, member_node, f'"{key}" is already a member of pool "{pooled[key]}"')
                ok = False
            else:
                keys.append(key)
                pooled[key] = name
        if not ok:
            return None
        return self.pool_members(name, key_node, members_node, path, keys, models, label, access)

    def pool_members(self, name, key_node, members_node, path, keys, models, label, access):
        """Members answer alike: same kind of model, same API; access the same unless the pool
        says its own (a pool never widens who may reach a member without saying so)."""
        from apps.azure.registry import model_access, type_for

        def kind(key):
            group, model = models[key]
            return model.type or type_for(key, force_prompt=group.force_prompt)

        def api(key):
            return models[key][1].use_responses_api

        first = keys[0]
        for key in keys[1:]:
            if kind(key) != kind(first) or api(key) != api(first):
                self.error(f"{path}.members", members_node,
                           f'members of pool "{name}" must be the same kind of model: "{first}" is '
                           f'{kind(first)}{" (Responses API)" if api(first) else ""}, "{key}" is '
                           f'{kind(key)}{" (Responses API)" if api(key) else ""}')
                return None
        if kind(first) == "image":
            self.error(f"{path}.members", members_node, "a pool is for chat models, not image models")
            return None
        rules = {model_access(*models[key]) for key in keys}
        if access is None and len(rules) > 1:
            self.error(path, key_node, f'members of pool "{name}" have different access rules: '
                       "give the pool its own access list")
            return None
        return PoolConfig(name=name, members=tuple(keys), label=label,
                          access=access if access is not None else next(iter(rules)),
                          line=key_node.start_mark.line + 1)

    def title_method(self, items):
        # LibreChat's "structured" asks for the title as structured output: Lapis's forced
        # function call is the same request shape, so it is run as "functions".
        method = self.choice(items, "titleMethod", ROOT, TITLE_METHODS, "completion")
        return "functions" if method == "structured" else method

    def groups(self, node):
        result = []
        seen_groups = {}
        seen_models = {}
        for index, group_node in enumerate(node.value):
            path = f"{ROOT}.groups[{index}]"
            result.append(self.group(group_node, path, index, seen_groups, seen_models))
        return result

    def group(self, node, path, index, seen_groups, seen_models):
        items = self.mapping(node, path)
        if items is None:
            return None
        name = self.string(items, "group", path)
        where = f'group "{name}"' if name else "a group"
        self.check_keys(items, GROUP_KEYS, path, where)
        if "group" not in items:
            self.error(path, node, "group (the group's name) is required")
        elif name:
            if name in seen_groups:
                self.error(f"{path}.group", items["group"][1], f'duplicate group name "{name}" (also groups[{seen_groups[name]}])')
            else:
                seen_groups[name] = index
        auth_mode = self.choice(items, "authMode", path, ("apiKey", "entra"), "apiKey")
        serverless = self.boolean(items, "serverless", path)
        api_key = self.secret(items, "apiKey", path, mask_inline=True)
        if "apiKey" not in items and auth_mode != "entra":
            self.error(path, node, f"{where}: apiKey is required (unless authMode: entra)")
        if "apiKey" in items and auth_mode == "entra":
            self.warn(f"{path}.apiKey", items["apiKey"][0], "apiKey is ignored with authMode: entra")
            api_key = None
        instance = self.instance_name(items, path)
        endpoint = self.url(items, "endpoint", path)
        base_url = self.url(items, "baseURL", path, placeholders=True)
        deployment = self.string(items, "deploymentName", path)
        version = self.string(items, "version", path)
        if base_url is not None and "${INSTANCE_NAME}" in base_url.reveal() and not instance:
            # LibreChat puts "" there (https://.openai.azure.com/...); say so at load time instead.
            self.error(f"{path}.baseURL", items["baseURL"][1],
                       f"{where}: baseURL uses ${{INSTANCE_NAME}} but the group has no instanceName")
        if serverless:
            if "baseURL" not in items:
                self.error(path, node, f"{where}: a serverless group needs baseURL")
        elif not ({"instanceName", "endpoint", "baseURL"} & items.keys()):
            self.error(path, node, f"{where}: needs instanceName, endpoint or baseURL")
        headers = self.headers(items, path)
        add_params = {}
        if "addParams" in items:
            value = self.plain(items["addParams"][1], f"{path}.addParams")
            if isinstance(value, dict):
                add_params = value
            else:
                self.error(f"{path}.addParams", items["addParams"][1], "addParams must be a mapping")
        drop_params = ()
        if "dropParams" in items:
            value = self.plain(items["dropParams"][1], f"{path}.dropParams")
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                drop_params = tuple(value)
            else:
                self.error(f"{path}.dropParams", items["dropParams"][1], "dropParams must be a list of parameter names")
        force_prompt = self.boolean(items, "forcePrompt", path)
        responses = self.boolean(items, "useResponsesApi", path)
        if responses and force_prompt:
            self.error(f"{path}.useResponsesApi", items["useResponsesApi"][1],
                       "useResponsesApi can't be combined with forcePrompt (the Responses API takes messages, not a prompt)")
            responses = False
        models = self.models(
            items, node, path, name, index, serverless, deployment, version, seen_models, responses
        )
        self.placeholder_hosts(path, items, base_url, instance, models)
        return GroupConfig(
            name=name or "",
            api_key=api_key,
            instance_name=instance,
            endpoint=endpoint,
            base_url=base_url,
            headers=headers,
            serverless=serverless,
            add_params=add_params,
            drop_params=drop_params,
            force_prompt=force_prompt,
            assistants=self.boolean(items, "assistants", path),
            auth_mode=auth_mode,
            models=tuple(models),
            access=self.access(items, path),
            use_responses_api=responses,
        )

    def access(self, items, path):
        """``access:`` a list of Lapis group names (IdP group ids or app-role names); None when
        absent. At model level it replaces the group's list for that model."""
        if "access" not in items:
            return None
        node = items["access"][1]
        apath = f"{path}.access"
        value = self.plain(node, apath)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.error(apath, node, "access must be a list of group names, like access: [Chat.Premium, research]")
            return None
        if not value:
            self.error(apath, node, "access: [] would let nobody use it; list group names, or remove access to allow everyone")
            return None
        return tuple(dict.fromkeys(v.strip() for v in value))

    def instance_name(self, items, path):
        """instanceName becomes the host ``{name}.openai.azure.com`` and fills ``${INSTANCE_NAME}``:
        a resource name only, so it can't add a path, port, user part or another host."""
        value = self.string(items, "instanceName", path, variables=True)
        if value is not None and not INSTANCE_NAME.match(value):
            self.error(f"{path}.instanceName", items["instanceName"][1], "instanceName must be an Azure resource name (letters, digits and hyphens)")
            return None
        return value

    def secret(self, items, key, path, *, mask_inline):
        raw = self.string(items, key, path, raw=True)
        if raw is None:
            return None
        value = self.resolve(raw, f"{path}.{key}", items[key][1])
        if value is None:
            return None
        display = raw if ENV_REF.search(raw) or not mask_inline else "•••• (inline)"
        return Secret(value, display)

    def url(self, items, key, path, *, placeholders=False):
        raw = self.string(items, key, path, raw=True)
        if raw is None:
            return None
        node = items[key][1]
        value = self.resolve(raw, f"{path}.{key}", node, placeholders=placeholders)
        if value is None:
            return None
        probe = value
        for name in PLACEHOLDERS:
            probe = probe.replace("${" + name + "}", "placeholder")
        try:
            parts = urlsplit(probe)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            self.error(f"{path}.{key}", node, f"{key} must be an absolute http(s) URL with a host")
            return None
        if parts.username is not None or parts.password is not None:
            self.error(f"{path}.{key}", node, f"{key} may not hold a user:password part (use apiKey)")
            return None
        if "\r" in value or "\n" in value:
            self.error(f"{path}.{key}", node, f"{key} may not hold a line break")
            return None
        host_has_placeholder = "${" in value.split("//", 1)[-1].split("/", 1)[0]
        # A host made of placeholders is checked per model, as really called (placeholder_hosts).
        if not host_has_placeholder and not self.public_endpoint(probe, f"{path}.{key}", node):
            return None
        return Secret(value, raw)

    def public_endpoint(self, url, path, node):
        """True if requests may go to ``url``: https on a public host, or a host the operator
        named in CONFIG_ALLOWED_ENDPOINT_HOSTS. Messages don't name the host (it may come from
        the environment)."""
        parts = urlsplit(url)
        host = _normal_host(parts.hostname or "")
        if host in self.allowed_hosts:
            return True
        field_name = path.rsplit(".", 1)[-1]
        allow = f"or allow the host by name in {ENDPOINT_HOSTS_ENV}"
        if not host.isascii():
            self.error(path, node, f"{field_name}'s host must be ASCII (write an international name in its xn-- form)")
            return False
        reason = non_public_reason(host)
        if reason:
            self.error(path, node, f"{field_name}'s host is {reason}: use the resource's public name, {allow}")
            return False
        if parts.scheme != "https":
            self.error(path, node, f"{field_name} uses plain http://: use https://, {allow}")
            return False
        return True

    def placeholder_hosts(self, path, items, base_url, instance, models):
        """A baseURL whose host is made of ${INSTANCE_NAME} or ${DEPLOYMENT_NAME} is checked
        again as each model really calls it."""
        if base_url is None or not any("${" + name + "}" in base_url.reveal() for name in PLACEHOLDERS):
            return
        for model in models:
            url = base_url.reveal().replace("${INSTANCE_NAME}", instance or "").replace("${DEPLOYMENT_NAME}", model.deployment or "")
            if not self.public_endpoint(url, f"{path}.baseURL", items["baseURL"][1]):
                return

    def headers(self, items, path):
        if "additionalHeaders" not in items:
            return ()
        base = f"{path}.additionalHeaders"
        header_items = self.mapping(items["additionalHeaders"][1], base)
        if header_items is None:
            return ()
        result = []
        for name, (key_node, value_node) in header_items.items():
            hpath = f"{base}.{name}"
            if name.lower() in FORBIDDEN_HEADERS:
                self.error(hpath, key_node, f"header {_quote(name)} may not be set here: it would override authentication or routing headers")
                continue
            if name.lower() in FRAMING_HEADERS or name.lower().startswith("proxy-"):
                self.error(hpath, key_node, f"header {_quote(name)} may not be set here: it is a hop-by-hop or framing header that only the HTTP client sets")
                continue
            if ENV_REF.search(name):
                self.error(hpath, key_node, "a header name can't hold ${VAR} (environment variables go in the value)")
                continue
            if not HEADER_NAME.match(name):
                self.error(hpath, key_node, f"{_quote(name[:40])} is not a valid header name")
                continue
            raw = self.scalar(value_node, hpath) if isinstance(value_node, yaml.ScalarNode) else None
            if not isinstance(raw, str):
                self.error(hpath, value_node, "header value must be a string (quote it)")
                continue
            if not self.header_value(raw, hpath, value_node):
                continue
            value = self.resolve(raw, hpath, value_node)
            if value is None or not self.header_value(value, hpath, value_node, resolved=True):
                continue
            display = raw if ENV_REF.search(raw) else "••••"
            result.append((name, Secret(value, display)))
        return tuple(result)

    def header_value(self, value, path, node, *, resolved=False):
        after = ", after resolving its environment variables" if resolved else ""
        if "\r" in value or "\n" in value:
            self.error(path, node, f"header value may not hold a line break (CR or LF){after}")
            return False
        if not HEADER_VALUE.match(value):
            self.error(path, node, f"header value may hold only visible ASCII characters, spaces and tabs{after}")
            return False
        return True

    def models(self, items, group_node, path, group_name, index, serverless, deployment, version, seen,
               responses=False):
        if "models" not in items:
            self.error(path, group_node, "models is required (at least one model)")
            return []
        mpath = f"{path}.models"
        models_node = items["models"][1]
        model_items = self.mapping(models_node, mpath)
        if model_items is None:
            return []
        if not model_items:
            self.error(mpath, models_node, "at least one model is required")
            return []
        result = []
        for key, (key_node, value_node) in model_items.items():
            model_path = f"{mpath}.{key}"
            if self.literal(key, model_path, key_node, what="a model key") is None:
                continue
            if key in seen:
                other_group, other_index = seen[key]
                self.error(model_path, key_node, f'model "{key}" is already defined in group "{other_group}" (groups[{other_index}])')
                continue
            seen[key] = (group_name or "?", index)
            model = self.model(
                key, key_node, value_node, model_path, group_name, serverless, deployment, version,
                responses,
            )
            if model:
                result.append(model)
        return result

    def model(self, key, key_node, node, path, group_name, serverless, deployment, version, responses):
        """A model entry; ``responses``: the group's useResponsesApi (the v1 Responses route
        needs no api-version, so a model served through it needs none from its group)."""
        line = key_node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node, path)
            if value is False:
                self.error(path, node, "false is not a valid model value (remove the model, or use true or a mapping)")
                return None
            if value is not True:
                self.error(path, node, "a model must be true or a mapping (deploymentName, version, ...)")
                return None
            if not serverless:
                needed = (("deploymentName", deployment),) + (() if responses else (("version", version),))
                missing = [name for name, v in needed if not v]
                if missing:
                    self.error(path, node, "true needs the group's " + " and ".join(missing))
                    return None
            return ModelConfig(
                key, group_name or "", deployment, version, None, None, None, None, None, line,
                use_responses_api=responses,
            )
        items = self.mapping(node, path, "true or a mapping")
        if items is None:
            return None
        self.check_keys(items, MODEL_KEYS, path, f'model "{key}"')
        own_deployment = self.string(items, "deploymentName", path)
        own_version = self.string(items, "version", path)
        if "useResponsesApi" in items:
            responses = self.boolean(items, "useResponsesApi", path)
        model_type = self.choice(items, "type", path, MODEL_TYPES, None)
        if responses and model_type not in (None, "chat") and "useResponsesApi" in items:
            self.error(f"{path}.useResponsesApi", items["useResponsesApi"][1],
                       f"useResponsesApi is for chat models, not a {model_type} model")
        if model_type in ("embedding", "transcription", "speech"):
            for name in ("vision", "maxOutput"):
                if name in items:
                    self.error(f"{path}.{name}", items[name][1],
                               f"{name} is for chat models, not a {model_type} model")
        if model_type not in (None, "chat"):
            responses = False  # a group's setting does not move its image models
        if not serverless:
            missing = []
            if not (own_deployment or deployment) and "deploymentName" not in items:
                missing.append("deploymentName")
            if not (own_version or version) and "version" not in items and not responses:
                missing.append("version")
            if missing:
                self.error(path, node, "needs " + " and ".join(missing) + ", from the model or its group")
        label = self.string(items, "label", path)
        if "assistants" in items:
            self.boolean(items, "assistants", path)
            self.warn(f"{path}.assistants", items["assistants"][0], "Lapis has no Assistants API: assistants on a model is accepted and ignored")
        vision = self.boolean(items, "vision", path, default=None) if "vision" in items else None
        return ModelConfig(
            key=key,
            group=group_name or "",
            deployment=own_deployment or deployment,
            version=own_version or version,
            label=label,
            context_window=self.integer(items, "contextWindow", path),
            max_output=self.integer(items, "maxOutput", path),
            vision=vision,
            type=model_type,
            line=line,
            access=self.access(items, path),
            use_responses_api=responses,
            pricing=self.pricing(items, path),
        )

    def pricing(self, items, path):
        """``pricing: {input, output, cachedInput?, currency?}``: per million tokens."""
        if "pricing" not in items:
            return None
        ppath = f"{path}.pricing"
        node = items["pricing"][1]
        entries = self.mapping(node, ppath, "a mapping (input, output, cachedInput, currency)")
        if entries is None:
            return None
        self.check_keys(entries, PRICING_KEYS, ppath, "pricing")
        rates = {}
        for key in ("input", "output", "cachedInput"):
            if key not in entries:
                if key != "cachedInput":
                    self.error(ppath, node, f"pricing needs {key} (price per million tokens)")
                continue
            rates[key] = self.rate(entries[key][1], f"{ppath}.{key}", key)
        currency = "USD"
        if "currency" in entries:
            value_node = entries["currency"][1]
            value = self.scalar(value_node, f"{ppath}.currency") if isinstance(value_node, yaml.ScalarNode) else None
            if not isinstance(value, str) or not CURRENCY.match(value):
                self.error(f"{ppath}.currency", value_node,
                           "currency must be a three-letter ISO 4217 code in capitals, e.g. USD or EUR")
            else:
                currency = value
        if None in rates.values() or "input" not in rates or "output" not in rates:
            return None
        return Price(rates["input"], rates["output"], rates.get("cachedInput"), currency, "config")

    def rate(self, node, path, key):
        """A price per million tokens: a number of 0 or more (Decimal), or None (reported)."""
        value = self.scalar(node, path) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, str) and self.literal(value, path, node) is None:
            return None  # a ${...} (reported): one problem is enough
        try:
            if isinstance(value, bool) or value is None:
                raise InvalidOperation
            price = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            price = None
        if price is None or not price.is_finite() or price < 0 or price > 1_000_000:
            self.error(path, node, f"{key} must be a price per million tokens: a number from 0 to 1000000, e.g. 2.50")
            return None
        return price


class ConfigFileError(ValueError):
    """A config file that can't be read as text; ``str()`` says what and names the file."""


def read_config_file(path):
    """The text of the YAML file at ``path``; raises ConfigFileError if it can't be read, is
    larger than MAX_BYTES (never read further) or is not UTF-8."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"{path} can't be read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigFileError(f"{path} is larger than {MAX_BYTES // 1024} KB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path} is not UTF-8 text (byte {exc.start})") from None


def _read_stored_secrets():
    from apps.azure.secrets import stored_secrets

    return stored_secrets()


def parse_config(text, *, environ=None, secrets=None):
    """Validate ``text``; every problem is reported at once. See the module docstring.

    ``secrets``: the stored keys ``${secret:NAME}`` may name ({name: value}); by default they
    are read from the database, and only when the text references one."""
    environ = os.environ if environ is None else environ
    secrets = _read_stored_secrets if secrets is None else secrets
    warnings = []
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return LoadResult(None, [Problem("", 1, 1, "the file is not UTF-8 text")], warnings)
    if len(text.encode("utf-8")) > MAX_BYTES:
        return LoadResult(None, [Problem("", 1, 1, f"the file is larger than {MAX_BYTES // 1024} KB")], warnings)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return LoadResult(None, [Problem("", 1, 1, "the file is empty")], warnings)
        validator = _Validator(loader, environ, secrets)
        config = validator.document(root)
    except _LimitExceeded as exc:
        mark = exc.mark
        return LoadResult(None, [Problem("", mark.line + 1, mark.column + 1, exc.message)], warnings)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # exc.problem is a short phrase; str(exc) would quote the offending line, which may hold a key.
        message = "YAML syntax error: " + (exc.problem or "unreadable")
        if exc.context:
            message += f" ({exc.context})"
        if "'\\t'" in (exc.problem or ""):
            message += "; indent with spaces, not tabs"
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return LoadResult(None, [Problem("", line, column, message)], warnings)
    except yaml.YAMLError:
        return LoadResult(None, [Problem("", 1, 1, "YAML syntax error")], warnings)
    finally:
        loader.dispose()
    errors = validator.errors
    return LoadResult(None if errors else config, errors, _legacy_warnings(environ, validator.referenced) + validator.warnings)


def _legacy_warnings(environ, referenced):
    """LibreChat's own variables, which Lapis never reads by itself; one the file references
    (the guide's ``apiKey: ${AZURE_API_KEY}``) is in use and must stay."""
    return [
        Problem("", 1, 1, f"environment variable {name} is a LibreChat setting Lapis does not read by itself: remove it")
        for name in LEGACY_VARS
        if environ.get(name) and name not in referenced
    ]
