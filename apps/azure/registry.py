"""The model registry: what users may pick, with capabilities and where each request goes.

``get_registry()`` / ``aget_registry()`` return the Registry of the active ConfigVersion.

Cross-process pickup is a cheap version check, not a broadcast: each process keeps its Registry
and, at most once per ``CHECK_INTERVAL`` seconds, reads the active version id from the database
(one indexed single-row query). When it differs, the process rebuilds the Registry from that
version's text. Why: the database is already the source of truth, so this works identically on
SQLite (one process) and PostgreSQL (many), with or without Redis, and a process that was busy,
restarting or disconnected can't miss a change the way it can miss a channel-layer message. The
cost is at most one tiny query per second per process, and a change reaches other processes
within about a second. In the process that activates, ``invalidate()`` makes it immediate.
"""

import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from urllib.parse import quote, unquote, urlsplit

from asgiref.sync import sync_to_async

from apps.azure.pricing import builtin_price
from apps.observability import metrics

logger = logging.getLogger("lapis.azure")
CHECK_INTERVAL = 1.0
DEFAULT_CONTEXT = 4096

CONTEXT_WINDOWS = {
    "gpt-3.5-turbo-0301": 4096,
    "gpt-3.5-turbo-0613": 4096,
    "gpt-35-turbo-0301": 4096,
    "gpt-35-turbo-0613": 4096,
    "gpt-35-turbo": 16385,
    "gpt-3.5-turbo": 16385,
    "gpt-4": 8192,
    "gpt-4-32k": 32768,
    "gpt-4-1106": 128000,
    "gpt-4-0125": 128000,
    "gpt-4-turbo": 128000,
    "gpt-4-vision": 128000,
    "gpt-4o": 128000,
    "gpt-4o-mini": 128000,
    "o1-mini": 128000,
    "o1-preview": 128000,
    "o1": 200000,
    "o3-mini": 200000,
    "o3": 200000,
    "o4-mini": 200000,
    "gpt-4.1": 1047576,
    "gpt-4.1-mini": 1047576,
    "gpt-4.1-nano": 1047576,
    "gpt-5": 400000,
    "gpt-5-mini": 400000,
    "gpt-5-nano": 400000,
    "mistral-large": 128000,
    "llama-2": 4096,
    "llama2": 4096,
    "llama-3.1": 128000,
    "llama-3.2": 128000,
    "llama-3.3": 128000,
}
VISION_NAMES = ("gpt-4-vision", "gpt-4o", "gpt-4-turbo", "gpt-4.1", "gpt-5", "o1", "o3", "o4-mini")
# Text-only models whose names contain a vision name: o1-preview, o1-mini and o3-mini take no
# images (o1, o3, o3-pro and o4-mini do).
VISION_EXCEPTIONS = ("gpt-4-turbo-preview", "o1-mini", "o1-preview", "o3-mini")
IMAGE_NAMES = re.compile(r"dall-e-2|dall-e-3|gpt-image-")
EMBEDDING_NAMES = re.compile(r"text-embedding-|(^|[^a-z])embed")
TRANSCRIPTION_NAMES = re.compile(r"whisper|transcribe")
SPEECH_NAMES = re.compile(r"(^|[^a-z])tts([^a-z]|$)")
REASONING = re.compile(r"(^|[^a-z0-9.])(o1|o3|o4)([^a-z0-9]|$)|gpt-5")


def context_window_for(key):
    """Longest table key contained in ``key`` (case-insensitive) wins; unknown → 4096."""
    lowered = key.lower()
    best = max((name for name in CONTEXT_WINDOWS if name in lowered), key=len, default=None)
    return CONTEXT_WINDOWS[best] if best else DEFAULT_CONTEXT


def vision_for(key):
    lowered = key.lower()
    for name in VISION_NAMES:
        start = lowered.find(name)
        while start != -1:
            if not any(lowered.startswith(exc, start) for exc in VISION_EXCEPTIONS):
                return True
            start = lowered.find(name, start + 1)
    return False


def type_for(key, *, force_prompt=False):
    if IMAGE_NAMES.search(key.lower()):
        return "image"
    if EMBEDDING_NAMES.search(key.lower()):
        return "embedding"
    if TRANSCRIPTION_NAMES.search(key.lower()):
        return "transcription"
    if SPEECH_NAMES.search(key.lower()):
        return "speech"
    return "completion" if force_prompt else "chat"


def is_reasoning(key):
    return bool(REASONING.search(key.lower()))


# The deployment route of each model type served only through the API (apps.gateway).
ROUTES = {"embedding": "embeddings", "transcription": "audio/transcriptions", "speech": "audio/speech"}

# How the deployment path hangs from a Target's base (see ``Target.request_url``).
ENDPOINT = "endpoint"  # a resource endpoint: {base}/openai/deployments/{deployment}
ROOT = "root"  # a baseURL root: {base}/deployments/{deployment} (the SDK's rule for base_url)
DEPLOYMENTS = "deployments"  # a baseURL that ends in /deployments: {base}/{deployment}
DEPLOYMENT = "deployment"  # a baseURL that names the deployment: {base} itself
ROOT_ONLY = "openai"  # serverless and v1: {base}/{route}, the deployment goes in the body


@dataclass(frozen=True)
class Target:
    """Where requests go and how they authenticate. Secrets stay inside ``Secret`` objects."""

    kind: str  # "azure" (AsyncAzureOpenAI) or "openai" (serverless, AsyncOpenAI)
    base_url: object  # Secret: the base as given (endpoint, baseURL with placeholders replaced)
    shape: str  # ENDPOINT, ROOT, DEPLOYMENTS, DEPLOYMENT or ROOT_ONLY
    api_version: str | None
    auth_mode: str
    api_key: object  # Secret | None
    headers: tuple  # ((name, Secret), ...)

    @property
    def uses_endpoint(self):
        return self.shape == ENDPOINT

    def request_url(self, deployment, route="chat/completions", *, query=True):
        """The URL every call for ``route`` of ``deployment`` goes to (secrets included): the one
        builder behind the stream reader, the SDK clients and the admin preview."""
        return self._url(self.base_url.reveal(), deployment, route, query)

    def display_url(self, deployment, route="chat/completions"):
        """``request_url`` as the admin wrote it: ``${VAR}`` kept, inline secrets never shown."""
        return self._url(self.base_url.display, deployment, route, True)

    def _hang(self, base, deployment):
        """The deployment base: the URL that ``/{route}`` follows for ``deployment``."""
        base = base.rstrip("/")
        name = quote(deployment or "", safe="")
        if self.shape == ENDPOINT:
            return f"{base}/openai/deployments/{name}"
        if self.shape == ROOT:
            return f"{base}/deployments/{name}"
        if self.shape == DEPLOYMENTS:
            return f"{base}/{name}"
        return base  # DEPLOYMENT and ROOT_ONLY

    def _url(self, base, deployment, route, query):
        suffix = f"?api-version={self.api_version}" if query and self.api_version else ""
        return f"{self._hang(base, deployment)}/{route}{suffix}"

    def responses_display_url(self):
        """The Responses API URL as the admin wrote it (see apps.azure.responses.responses_url)."""
        from apps.azure.responses import responses_base, responses_query

        query = responses_query(self.api_version)
        suffix = f"?api-version={query['api-version']}" if query else ""
        return f"{responses_base(self, self.base_url.display)}/responses{suffix}"


def base_url_shape(url, deployment, *, names_deployment=False):
    """How the deployment path hangs from a normal group's ``baseURL`` (placeholders replaced).

    LibreChat's rule, as its Azure guide shows it: a baseURL that names the deployment
    (``${DEPLOYMENT_NAME}``, or the deployment as its last path segment, e.g. Cloudflare's
    ``.../azure-openai/{instance}/{deployment}`` or an APIM ``.../{instance}/{deployment}``) is
    the deployment base, and the route follows it directly. Else the deployment path hangs from
    it: ``/{deployment}`` after a path ending in ``/deployments``, ``/deployments/{deployment}``
    after anything else (the SDK's rule for ``base_url``).
    """
    path = urlsplit(url).path.rstrip("/")
    last = unquote(path.rsplit("/", 1)[-1]) if path else ""
    if names_deployment or (deployment and last == deployment):
        return DEPLOYMENT
    if last == "deployments":
        return DEPLOYMENTS
    return ROOT


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str
    group: str
    deployment: str | None
    api_version: str | None
    type: str
    context_window: int
    max_output: int | None
    vision: bool
    force_prompt: bool
    serverless: bool
    auth_mode: str
    simulated: bool
    reasoning: bool = False
    # Streamed through /openai/v1/responses (config useResponsesApi), not chat/completions.
    responses_api: bool = False
    access: tuple | None = None  # Lapis group names that may use it; None: everyone
    # What its tokens cost (apps.azure.pricing.Price): the YAML's, else the built-in table's;
    # None: no known price (tokens only, never a guessed cost).
    pricing: object = None
    target: Target | None = field(default=None, repr=False, compare=False)
    add_params: dict = field(default_factory=dict, repr=False, compare=False)
    drop_params: tuple = field(default=(), repr=False, compare=False)
    # A pool (config ``pools``): its member specs in order of preference; () for a plain model.
    # A pool otherwise reads as its first member (target, deployment), so code that does not
    # fail over (titles, summaries) still reaches a real deployment.
    members: tuple = field(default=(), repr=False, compare=False)
    # A member tried with another behind it: a 429/5xx is handed on at once, not waited for.
    fails_over: bool = field(default=False, repr=False, compare=False)

    @property
    def request_url(self):
        route = "completions" if self.force_prompt else "chat/completions"
        if self.type == "image":
            route = "images/generations"
        if self.type in ROUTES:
            route = ROUTES[self.type]
        if not self.target:
            return ""
        if self.responses_api:
            return self.target.responses_display_url()
        return self.target.display_url(self.deployment, route)


def _substitute(text, *, instance, deployment):
    return text.replace("${INSTANCE_NAME}", instance or "").replace(
        "${DEPLOYMENT_NAME}", deployment or ""
    )


def _target(group, model):
    from apps.azure.config import Secret

    if group.serverless:
        value = group.base_url.reveal().rstrip("/")
        display = group.base_url.display.rstrip("/")
        for suffix in ("/chat/completions", "/completions"):
            if value.endswith(suffix):
                value, display = value[: -len(suffix)], display[: -len(suffix)]
                break
        base, shape, kind = Secret(value, display), ROOT_ONLY, "openai"
    elif group.base_url:
        written = group.base_url.display + group.base_url.reveal()
        value = _substitute(group.base_url.reveal(), instance=group.instance_name, deployment=model.deployment)
        display = _substitute(group.base_url.display, instance=group.instance_name, deployment=model.deployment)
        base, kind = Secret(value.rstrip("/"), display.rstrip("/")), "azure"
        shape = base_url_shape(value, model.deployment, names_deployment="${DEPLOYMENT_NAME}" in written)
    elif group.endpoint:
        base, shape, kind = group.endpoint, ENDPOINT, "azure"
    else:
        url = f"https://{group.instance_name}.openai.azure.com"
        base, shape, kind = Secret(url, url), ENDPOINT, "azure"
    return Target(
        kind=kind,
        base_url=base,
        shape=shape,
        api_version=model.version,
        auth_mode=group.auth_mode,
        api_key=group.api_key,
        headers=group.headers,
    )


POOLS_SECTION = "Pools"  # the picker's section for pools (their members are not listed)


def build_pool(pool, members):
    """The ModelSpec users pick for ``pool`` (a PoolConfig) served by ``members`` (specs): what
    every member can do (the smallest window, vision only if all see)."""
    first = members[0]
    outputs = [m.max_output for m in members if m.max_output]
    return replace(
        first,
        key=pool.name,
        label=pool.label or pool.name,
        group=POOLS_SECTION,
        context_window=min(m.context_window for m in members),
        max_output=min(outputs) if outputs else None,
        vision=all(m.vision for m in members),
        access=pool.access,
        members=tuple(members),
    )


def model_access(group, model):
    """A model's own ``access`` list replaces its group's; neither means everyone."""
    return model.access if model.access is not None else group.access


def build_spec(group, model, *, simulated=False):
    type_ = model.type or type_for(model.key, force_prompt=group.force_prompt)
    return ModelSpec(
        key=model.key,
        label=model.label or model.key,
        group=group.name,
        deployment=model.deployment or (model.key if group.serverless else None),
        api_version=model.version,
        type=type_,
        # An image model has no chat context window (0: none shown, none budgeted).
        context_window=0 if type_ in ("image", *ROUTES) else model.context_window or context_window_for(model.key),
        max_output=model.max_output,
        vision=model.vision if model.vision is not None else vision_for(model.key),
        force_prompt=group.force_prompt,
        serverless=group.serverless,
        auth_mode=group.auth_mode,
        simulated=simulated,
        reasoning=is_reasoning(model.key),
        responses_api=model.use_responses_api and type_ == "chat",
        access=model_access(group, model),
        pricing=model.pricing or builtin_price(model.key, model.deployment),
        target=_target(group, model),
        add_params=dict(group.add_params),
        drop_params=tuple(group.drop_params),
    )


class Registry:
    """An immutable view of one validated config (or the empty registry)."""

    def __init__(self, config=None, *, version_id=None):
        self.version_id = version_id
        self.config = config
        self._groups = []
        if config is not None:
            for group in config.groups:
                specs = [build_spec(group, m, simulated=config.simulated) for m in group.models]
                self._groups.append((group.name, specs))
        self._by_key = {spec.key: spec for _, specs in self._groups for spec in specs}
        self._pools = []
        for pool in config.pools if config is not None else ():
            self._pools.append(build_pool(pool, [self._by_key[key] for key in pool.members]))
        self._pooled = {member.key for pool in self._pools for member in pool.members}
        self._by_key.update((pool.key, pool) for pool in self._pools)
        self.title_convo = bool(config and config.title_convo)
        self.title_method = config.title_method if config else "completion"
        self.summarize = bool(config and config.summarize)
        self.plugins = bool(config and config.plugins)
        self.simulated = bool(config and config.simulated)
        self.title_model = self._by_key.get(config.title_model) if config else None
        self.summary_model = self._by_key.get(config.summary_model) if config else None

    def __repr__(self):
        return f"<Registry version={self.version_id} models={list(self._by_key)}>"

    @property
    def is_empty(self):
        return not self._by_key

    def get(self, key):
        return self._by_key.get(key)

    def all_models(self):
        return list(self._by_key.values())

    def chat_models(self):
        """What users pick from: pools first, then the models that are in no pool."""
        plain = (s for s in self._by_key.values() if s.key not in self._pooled and not s.members)
        return [s for s in [*self._pools, *plain] if s.type in ("chat", "completion")]

    def image_models(self):
        return [spec for spec in self._by_key.values() if spec.type == "image"]

    def embedding_models(self):
        return [spec for spec in self._by_key.values() if spec.type == "embedding"]

    def groups(self):
        """The picker's sections: pools (if any), then each group without its pooled models."""
        sections = [(POOLS_SECTION, list(self._pools))] if self._pools else []
        for name, specs in self._groups:
            kept = [spec for spec in specs if spec.key not in self._pooled]
            if kept:
                sections.append((name, kept))
        return sections

    def config_groups(self):
        """Every group with every model, as the file has them (the admin preview)."""
        return [(name, list(specs)) for name, specs in self._groups]

    def pools(self):
        return list(self._pools)

    def first_vision_model(self):
        return next((spec for spec in self.chat_models() if spec.vision), None)

    def for_user(self, user):
        """The models ``user`` may use, as a registry-like view (see apps.azure.access)."""
        from apps.azure.access import UserModels

        return UserModels(self, user=user)


EMPTY = Registry()
_lock = threading.Lock()
# "unusable": the id of an active version this process could not use (kept so that it is not
# parsed again every CHECK_INTERVAL).
# "keys": the stored keys' stamp the registry was parsed with.
_state = {"registry": EMPTY, "checked": 0.0, "unusable": None, "keys": None}


def registry_from_text(text, *, version_id=None, environ=None):
    """A Registry from YAML text, or None when the text can't be used here (errors logged)."""
    from apps.azure.config import parse_config

    result = parse_config(text, environ=environ)
    if result.errors:
        logger.error(
            "config version %s can't be used in this process:\n%s",
            version_id,
            "\n".join(str(problem) for problem in result.errors),
        )
        return None
    return Registry(result.config, version_id=version_id)


def _active_version():
    """(id of the active version or None, the stored keys' stamp): one statement. The stamp
    (how many keys, when one last changed) moves with every key added, changed or deleted."""
    from django.db.models.expressions import RawSQL

    from apps.azure.models import ConfigVersion, StoredSecret

    table = StoredSecret._meta.db_table
    row = (
        ConfigVersion.objects.filter(is_active=True)
        .annotate(keys=RawSQL(f"SELECT COUNT(*) FROM {table}", []),
                  keys_changed=RawSQL(f"SELECT MAX(updated) FROM {table}", []))
        .values_list("pk", "keys", "keys_changed")
        .first()
    )
    return (row[0], row[1:]) if row else (None, None)


def _refresh(active):
    """Move to the active version (``active``: ``_active_version()``), or parse it again when
    the stored keys changed; one this process can't use (e.g. a ``${VAR}`` missing from its
    environment) leaves the current models in place: a bad config never replaces a good one."""
    active_id, keys = active
    current = _state["registry"]
    if keys == _state["keys"] and active_id in (current.version_id, _state["unusable"]):
        return current
    _state["keys"] = keys
    if active_id is None:
        registry = EMPTY
    else:
        from apps.azure.models import ConfigVersion

        text = ConfigVersion.objects.filter(pk=active_id).values_list("text", flat=True).first()
        registry = None if text is None else registry_from_text(text, version_id=active_id)
        if registry is None:
            logger.error(
                "config version %s is active but unusable here; keeping version %s",
                active_id,
                current.version_id,
            )
            _state["unusable"] = active_id
            return current
        logger.info("model registry now at config version %s", active_id)
    _state["registry"] = registry
    _state["unusable"] = None
    metrics.config_version(registry.version_id)
    return registry


def _check_sync():
    with _lock:
        now = time.monotonic()
        if now - _state["checked"] < CHECK_INTERVAL:
            return _state["registry"]
        registry = _refresh(_active_version())
        _state["checked"] = now
        return registry


def get_registry():
    """The active Registry (sync code); reads the DB at most once per CHECK_INTERVAL."""
    if time.monotonic() - _state["checked"] < CHECK_INTERVAL:
        return _state["registry"]
    return _check_sync()


async def aget_registry():
    """The active Registry (async code); same contract as ``get_registry``."""
    if time.monotonic() - _state["checked"] < CHECK_INTERVAL:
        return _state["registry"]
    return await sync_to_async(_check_sync, thread_sensitive=True)()


def invalidate():
    """Forget the cached registry: the next call re-reads the active version."""
    with _lock:
        _state["checked"] = 0.0
        _state["registry"] = EMPTY
        _state["unusable"] = None
        _state["keys"] = None


reset_registry = invalidate
