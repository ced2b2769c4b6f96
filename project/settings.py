"""Lapis settings, read from the environment.

With nothing set, Lapis runs on SQLite and the in-memory channel layer, keeping everything
under one data directory (``./data``). ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL
and Redis for several processes.
"""

import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_float(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}") from None


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Persistent connections (seconds; 0 closes after every request or batch); CONN_HEALTH_CHECKS
# tests a reused connection first, so one the server dropped is replaced, not used.
DEFAULT_CONN_MAX_AGE = 60
DEFAULT_CONNECT_TIMEOUT = 5


def parse_database_url(url):
    """Turn ``postgres://user:password@host:port/name?opt=v`` into a DATABASES entry.

    Raises ImproperlyConfigured with a message that never repeats the password.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid URL ({exc})") from None
    if parts.scheme in ("sqlite", "sqlite3"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path) or ":memory:"}
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme or '(none)'!r} is not supported: "
            "use postgres://user:password@host:port/name"
        )
    name = unquote(parts.path.lstrip("/"))
    if not parts.hostname and "host" not in dict(parse_qsl(parts.query)):
        raise ImproperlyConfigured("DATABASE_URL has no host: use postgres://user:password@host:port/name")
    if not name:
        raise ImproperlyConfigured("DATABASE_URL has no database name: add /name after the host")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", DEFAULT_CONN_MAX_AGE),
        "CONN_HEALTH_CHECKS": True,
        # A server that does not answer fails the connect in seconds (the answer writer retries)
        # instead of hanging on the operating system's TCP timeout.
        "OPTIONS": {"connect_timeout": DEFAULT_CONNECT_TIMEOUT, **dict(parse_qsl(parts.query))},
    }


def load_or_create_secret_key(data_dir):
    """The key from ``SECRET_KEY``, else one generated once and kept in the data directory."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = Path(data_dir) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# Entra may use only a local identity endpoint (IDENTITY_ENDPOINT on a loopback host): never
# the cloud metadata address. On by default with DEBUG; the tests and `make run` turn it on.
ENTRA_LOCAL_IDENTITY_ONLY = env_bool("ENTRA_LOCAL_IDENTITY_ONLY", DEBUG)
SECRET_KEY = load_or_create_secret_key(DATA_DIR)
# Fernet keys for the model-group keys typed in the admin (apps/azure/secrets.py); the first encrypts.
LAPIS_SECRETS_KEYS = os.environ.get("LAPIS_SECRETS_KEYS", "")
LAPIS_HTTPS = env_bool("LAPIS_HTTPS", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
REGISTRATION_OPEN = env_bool("REGISTRATION_OPEN", False)
CONFIG_PATH = env_str("CONFIG_PATH")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "apps.accounts",
    "apps.azure",
    "apps.simulator",
    "apps.chat",
    "apps.media",
    "apps.governance",
    "apps.observability",
    "apps.sharing",
    "apps.transfer",
    "apps.gateway",
    "apps.audit",  # last: it watches the admin classes every other app registered
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.gateway.middleware.ApiErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "apps.accounts.middleware.FirstRunMiddleware",
    "apps.accounts.middleware.LoginRequiredMiddleware",
    "apps.accounts.middleware.AdminForStaffOnlyMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "apps.governance.context.retention",
            ],
        },
    },
]

if env_str("DATABASE_URL"):
    DATABASES = {"default": parse_database_url(env_str("DATABASE_URL"))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "lapis.sqlite3",
            "OPTIONS": {
                # WAL lets readers go on while one writer writes; IMMEDIATE takes the write
                # lock at BEGIN so two writers queue on the busy timeout instead of deadlocking.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": env_float("SQLITE_BUSY_TIMEOUT", 20),
            },
            # Sound on SQLite too: a connection is one open file; WAL lets the others read.
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", DEFAULT_CONN_MAX_AGE),
            "CONN_HEALTH_CHECKS": True,
            # A file, not Django's default shared-cache memory database: that one answers
            # concurrent writers with "table is locked" at once instead of waiting on the busy
            # timeout, so in-process tests with several answers at once failed at random.
            "TEST": {"NAME": DATA_DIR / "test_lapis.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# How long an answer's final write is retried while the database is away before the user is told
# it was not saved (it is still saved once the database is back), and how long SIGTERM lets
# running answers finish before they are saved as interrupted.
CHAT_SAVE_PATIENCE = env_float("CHAT_SAVE_PATIENCE", 15)
SHUTDOWN_GRACE = env_float("SHUTDOWN_GRACE", 5)
# Threads for the chat's hot-path database calls (project.dbthreads); 0: 1 on SQLite, 4 otherwise.
CHAT_DB_THREADS = env_int("CHAT_DB_THREADS", 0)
# Rate limits per user (apps.governance.ratelimits; admins override them per user and group).
# 0 means no limit. Shared by all processes through the cache (Redis with REDIS_URL).
CHAT_ANSWERS_PER_MINUTE = env_int("CHAT_ANSWERS_PER_MINUTE", 20)
CHAT_ANSWERS_AT_ONCE = env_int("CHAT_ANSWERS_AT_ONCE", 4)
CHAT_SOCKETS_PER_USER = env_int("CHAT_SOCKETS_PER_USER", 20)
# Seconds after which the slot of an answer or socket whose process died is free again.
RATE_LIMIT_SLOT_TTL = env_int("RATE_LIMIT_SLOT_TTL", 60)

# Prometheus figures (apps.observability): off unless one of these is set. METRICS_TOKEN opens
# /metrics to a bearer token; METRICS_ADDRESS (host:port) serves them on a separate listener of
# each server process (project.server), never through the public URL space.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ADDRESS = env_str("METRICS_ADDRESS")

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis, read in batches by one reader per process (project.layers).
            "BACKEND": "project.layers.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times out socket reads after 5 s by default, which cuts channels_redis'
                # blocking BZPOPMIN (also 5 s) and drops idle websockets; the server-side timeout
                # of that command already bounds every wait.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "capacity": 1000,
                # Every process has ONE control channel (apps.chat.generation) for all its answers.
                "channel_capacity": {"generation.*": 20000},
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # Channels' layer with a cost per frame that does not grow with the number of answers.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "project.layers.InMemoryChannelLayer",
            "CONFIG": {"channel_capacity": {"generation.*": 20000}},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
# Per client address: much higher than per account, so one office behind a NAT is not locked out.
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 50)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 60)
# How many reverse proxies in front of Lapis append to X-Forwarded-For; 0 trusts none of it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)

# Company sign-in (OpenID Connect, Entra ID first): apps/accounts/oidc.py, README "Company sign-in".
ENTRA_TENANT_ID = env_str("ENTRA_TENANT_ID")
OIDC_ISSUER = env_str("OIDC_ISSUER") or (
    f"https://login.microsoftonline.com/{ENTRA_TENANT_ID}/v2.0" if ENTRA_TENANT_ID else ""
)
OIDC_ENABLED = bool(OIDC_ISSUER)
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
# Single-tenant by default: only the configured tenant's users (Entra's tid claim).
OIDC_ALLOWED_TENANTS = env_list(
    "OIDC_ALLOWED_TENANTS",
    ENTRA_TENANT_ID if ENTRA_TENANT_ID not in ("common", "organizations", "consumers") else "",
)
OIDC_ALLOWED_EMAIL_DOMAINS = [d.lower().lstrip("@") for d in env_list("OIDC_ALLOWED_EMAIL_DOMAINS")]
OIDC_CREATE_USERS = env_bool("OIDC_CREATE_USERS", True)
OIDC_ADMIN_ROLES = env_list("OIDC_ADMIN_ROLES")
OIDC_BUTTON_LABEL = env_str(
    "OIDC_BUTTON_LABEL",
    "Sign in with Microsoft" if "login.microsoftonline.com" in OIDC_ISSUER else "Sign in with single sign-on",
)
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("apps.accounts.oidc.LapisOIDCBackend")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = DATA_DIR / "media"
# Seconds without a byte from Azure before a streaming answer counts as stalled (it is then
# saved with its text and an "upstream_stalled" error).
CHAT_IDLE_TIMEOUT = env_int("CHAT_IDLE_TIMEOUT", 60)
if not 1 <= CHAT_IDLE_TIMEOUT <= 3600:
    raise ImproperlyConfigured(
        f"CHAT_IDLE_TIMEOUT must be between 1 and 3600 seconds, not {CHAT_IDLE_TIMEOUT}"
    )
# Seconds a browser waits without a frame of a streaming answer before it asks the server for
# the answer again (``resume``): the channel layer may drop frames, the last ones included, and
# then nothing else would tell the page that the answer ended.
# Full-text search (apps/chat/search.py): PostgreSQL's text-search configuration for the index and
# the queries ("simple": no stemming, any language; "english", "german", …: stemmed, stop words
# dropped). Changing it recomputes the index at the next `manage.py migrate`. SQLite's FTS5 index
# always tokenizes without stemming.
SEARCH_LANGUAGE = env_str("SEARCH_LANGUAGE", "simple")
if not re.fullmatch(r"[a-z_]{1,63}", SEARCH_LANGUAGE):
    raise ImproperlyConfigured(
        f"SEARCH_LANGUAGE must be a text-search configuration name like simple or english, not {SEARCH_LANGUAGE!r}"
    )
CHAT_STREAM_SILENCE = env_int("CHAT_STREAM_SILENCE", 10)
if not 1 <= CHAT_STREAM_SILENCE <= 600:
    raise ImproperlyConfigured(
        f"CHAT_STREAM_SILENCE must be between 1 and 600 seconds, not {CHAT_STREAM_SILENCE}"
    )
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
# Where generated-image links may be fetched from, besides the upstream's own origin (HTTPS only):
# Azure keeps DALL-E results in blob storage.
IMAGE_URL_HOSTS = [
    "." + host.lstrip(".*") for host in env_list("IMAGE_URL_HOSTS", ".blob.core.windows.net")
]
# The server (project/server.py) refuses a body over this before it is read, on every address
# but the image upload and the config load, which have their own; the JSON APIs take 64 KB.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 64 * 1024)
# Largest export file an import takes (a ChatGPT conversations.json of a heavy user is tens of MB).
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024)
if REQUEST_MAX_BYTES < 1024:
    raise ImproperlyConfigured(f"REQUEST_MAX_BYTES must be at least 1024, not {REQUEST_MAX_BYTES}")
# The OpenAI-compatible API's chat and embeddings bodies (apps.gateway): chats may carry images
# as base64 data URLs (4/3 of the image's size), embeddings up to 2,048 inputs.
API_REQUEST_MAX_BYTES = env_int("API_REQUEST_MAX_BYTES", 20 * 1024 * 1024)
if API_REQUEST_MAX_BYTES < REQUEST_MAX_BYTES:
    raise ImproperlyConfigured(
        f"API_REQUEST_MAX_BYTES must be at least REQUEST_MAX_BYTES ({REQUEST_MAX_BYTES}), not {API_REQUEST_MAX_BYTES}"
    )
# Seconds a connection may take to send a request's line and headers, and may stay idle between
# requests, before the server closes it (slow or abandoned clients, half-sent websocket upgrades).
HTTP_HEADER_TIMEOUT = env_float("HTTP_HEADER_TIMEOUT", 10)
HTTP_IDLE_TIMEOUT = env_float("HTTP_IDLE_TIMEOUT", 10)
for _name, _value in (("HTTP_HEADER_TIMEOUT", HTTP_HEADER_TIMEOUT), ("HTTP_IDLE_TIMEOUT", HTTP_IDLE_TIMEOUT)):
    if not 0.1 <= _value <= 3600:
        raise ImproperlyConfigured(f"{_name} must be between 0.1 and 3600 seconds, not {_value}")
# Form fields other than files (a pasted config is the largest); files over 1 MB spool to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed names need a collectstatic run, which the Docker image does at build.
        "BACKEND": "project.storage.StaticStorage"
        if env_bool("LAPIS_MANIFEST_STATIC", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Without a collectstatic run (make run, tests), WhiteNoise serves straight from the finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# Seconds between the chat page's looks at model health (the banner for a model that is
# rate-limited or failing right now; apps/azure/health.py).
HEALTH_POLL_SECONDS = env_int("HEALTH_POLL_SECONDS", 15)
if not 1 <= HEALTH_POLL_SECONDS <= 3600:
    raise ImproperlyConfigured(
        f"HEALTH_POLL_SECONDS must be between 1 and 3600 seconds, not {HEALTH_POLL_SECONDS}"
    )

# Security baseline: strict CSP (no inline script or style), no framing, no sniffing.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if LAPIS_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a promise to browsers that is slow to take back; it stays the
        # operator's explicit choice, so its absence is not a warning.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "lapis": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "apps": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
