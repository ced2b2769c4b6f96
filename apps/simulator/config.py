"""The simulator's configuration: a YAML file (see default.yaml) merged over built-in defaults.

Contract: ``load_config(path=None, overrides=None) -> SimConfig``. Unknown deployment types or a
missing ``model`` raise ``ValueError`` naming the deployment, so a bad file fails at start.
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("default.yaml")
DEPLOYMENT_TYPES = ("chat", "completion", "image", "dalle2", "embedding", "transcription", "speech")


@dataclass
class Deployment:
    name: str
    model: str
    type: str = "chat"
    context_window: int = 128000
    rate_limit_rpm: int | None = None
    ttft_ms: float = 0
    chunk_ms: float = 0
    tokens: int = 40
    async_filter: bool = False
    reasoning: bool = False  # an o-series/codex-like model: reasoning item, summary, reasoning tokens
    responses_only: bool = False  # served only through /openai/v1/responses (chat: 400)


@dataclass
class SimConfig:
    api_key: str = "sim-key"
    token_lifetime: int = 3600
    identity_header: str = "sim-identity-header"
    image_url_ttl: int = 3600
    dalle2_polls: int = 2
    log_size: int = 500
    api_versions: tuple = ()
    stream_options_since: str = "2024-09-01-preview"
    serverless_model: str = "Mistral-large-2411"
    # Gateway shapes: with prefix P, "P/{deployment}/{op}" is a deployment route as well, as a
    # gateway (Cloudflare AI Gateway's /v1/{account}/{gateway}/azure-openai/{resource}, an APIM
    # /{resource}) forwards it to /openai/deployments/{deployment}/{op}.
    path_prefixes: tuple = ()
    deployments: dict = field(default_factory=dict)

    def allows_stream_options(self, api_version):
        # Azure's api-versions sort as dates; a "-preview" suffix sorts after the bare date.
        return api_version is None or api_version >= self.stream_options_since


def _deployment(name, raw, defaults):
    if not isinstance(raw, dict) or not raw.get("model"):
        raise ValueError(f"deployments.{name}: needs a 'model' (the model version string)")
    values = {**defaults, **raw}
    kind = values.get("type", "chat")
    if kind not in DEPLOYMENT_TYPES:
        raise ValueError(f"deployments.{name}.type: {kind!r} is not one of {DEPLOYMENT_TYPES}")
    allowed = set(Deployment.__dataclass_fields__) - {"name"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"deployments.{name}: unknown keys {sorted(unknown)}")
    return Deployment(name=name, **values)


def _prefix(value):
    text = "/" + str(value).strip("/")
    if text == "/" or "?" in text or "#" in text:
        raise ValueError(f"path_prefixes: {value!r} is not a path like /gateway/azure-openai/res")
    return text


def build_config(data):
    """A SimConfig from a parsed mapping (the YAML document)."""
    data = dict(data or {})
    defaults = data.pop("defaults", None) or {}
    deployments = data.pop("deployments", None) or {}
    versions = tuple(str(v) for v in data.pop("api_versions", None) or ())
    prefixes = tuple(_prefix(p) for p in data.pop("path_prefixes", None) or ())
    unknown = set(data) - set(SimConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"simulator config: unknown keys {sorted(unknown)}")
    config = SimConfig(api_versions=versions, path_prefixes=prefixes, **data)
    config.deployments = {
        str(name): _deployment(str(name), raw, defaults) for name, raw in deployments.items()
    }
    return config


def load_config(path=None, overrides=None):
    """Read ``path`` (default.yaml when None) and apply top-level ``overrides``."""
    text = Path(path or DEFAULT_PATH).read_text()
    data = yaml.safe_load(text) or {}
    data.update(overrides or {})
    return build_config(data)
