"""CONFIG_PATH at start: a system check (``manage.py check --deploy``) and the start-up hook.

The check is a deploy check so that ``migrate`` still runs while the file is being fixed; the
start-up hook is what stops a server process: it logs every error and raises.
"""

import logging

from django.conf import settings
from django.core import checks

logger = logging.getLogger("lapis.azure")


def check_config_path(app_configs=None, **kwargs):
    from apps.azure.config import ConfigFileError, parse_config, read_config_file

    path = settings.CONFIG_PATH
    if not path:
        return []
    try:
        text = read_config_file(path)
    except ConfigFileError as exc:
        return [checks.Error(f"CONFIG_PATH {exc}", id="lapis.E001")]
    result = parse_config(text)
    return [
        checks.Error(f"CONFIG_PATH {path}: {problem}", id="lapis.E001") for problem in result.errors
    ] + [checks.Warning(f"CONFIG_PATH {path}: {problem}", id="lapis.W001") for problem in result.warnings]


def check_config_allow_lists(app_configs=None, **kwargs):
    """CONFIG_ALLOWED_VARIABLE_PREFIXES and CONFIG_ALLOWED_ENDPOINT_HOSTS entries that could never
    match what they are compared with (shown by every manage.py command)."""
    import os
    import re

    from apps.azure.config import (
        ENDPOINT_HOSTS_ENV,
        VARIABLE_PREFIXES_ENV,
        allowed_endpoint_hosts,
        allowed_variable_prefixes,
    )

    problems = []
    for prefix in allowed_variable_prefixes(os.environ):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
            problems.append(checks.Error(
                f"{VARIABLE_PREFIXES_ENV} entry {prefix[:40]!r} is not the start of an environment variable name.",
                hint="List name prefixes such as LAPIS_,AZURE_ (letters, digits, _), no wildcards.",
                id="lapis.E002"))
    for host in allowed_endpoint_hosts(os.environ):
        if not (re.fullmatch(r"[a-z0-9._-]+", host) or _is_ipv6(host)):
            problems.append(checks.Error(
                f"{ENDPOINT_HOSTS_ENV} entry {host[:60]!r} is not a bare host name or address.",
                hint="Write hosts only, without scheme, port or path: 127.0.0.1,localhost,[::1].",
                id="lapis.E003"))
    return problems


def check_entra_identity(app_configs=None, **kwargs):
    """The Entra guard's settings: DEBUG without ENTRA_LOCAL_IDENTITY_ONLY lets azure-identity
    probe the cloud metadata address from a developer's machine (lapis.W004); with the guard on,
    a non-local IDENTITY_ENDPOINT is a contradiction every Entra call would fail on (lapis.E004)."""
    import os

    from apps.azure.client import local_identity_problem

    if not settings.ENTRA_LOCAL_IDENTITY_ONLY:
        if settings.DEBUG:
            return [checks.Warning(
                "DEBUG is on and ENTRA_LOCAL_IDENTITY_ONLY is off: an authMode: entra model lets "
                "azure-identity try the cloud metadata address 169.254.169.254.",
                hint="Set ENTRA_LOCAL_IDENTITY_ONLY=1 and point IDENTITY_ENDPOINT/IDENTITY_HEADER "
                "at the simulator's /msi/token, as make run does.",
                id="lapis.W004")]
        return []
    problem = local_identity_problem()
    if problem and os.environ.get("IDENTITY_ENDPOINT"):
        return [checks.Error(
            f"ENTRA_LOCAL_IDENTITY_ONLY is on and {problem}: every authMode: entra call will "
            "fail with auth_failed.",
            hint="Point IDENTITY_ENDPOINT at a loopback identity endpoint (the simulator's "
            "/msi/token) with IDENTITY_HEADER, or set ENTRA_LOCAL_IDENTITY_ONLY=0 in production.",
            id="lapis.E004")]
    return []


def check_secrets_keys(app_configs=None, **kwargs):
    """LAPIS_SECRETS_KEYS entries must be Fernet keys (lapis.E005)."""
    from apps.azure.secrets import cipher

    try:
        cipher()
    except ValueError as exc:
        return [checks.Error(str(exc), hint="Make one with: python -c \"from cryptography.fernet import "
                             "Fernet; print(Fernet.generate_key().decode())\"", id="lapis.E005")]
    return []


def check_secrets_keys_deploy(app_configs=None, **kwargs):
    """Without LAPIS_SECRETS_KEYS the stored keys are encrypted under a key derived from
    SECRET_KEY, which often lives beside the database (lapis.W005, deploy only)."""
    if settings.LAPIS_SECRETS_KEYS.strip():
        return []
    return [checks.Warning(
        "LAPIS_SECRETS_KEYS is not set: keys typed in the admin are encrypted under a key derived "
        "from SECRET_KEY.", hint="Set LAPIS_SECRETS_KEYS to a Fernet key kept apart from the database.",
        id="lapis.W005")]


def _is_ipv6(host):
    import ipaddress

    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        return False


def load_config_path_at_start():
    """Server start: apply CONFIG_PATH, or stop the process listing every error."""
    from django.core.exceptions import ImproperlyConfigured

    from apps.azure.services import ConfigInvalid, load_config_file

    path = settings.CONFIG_PATH
    if not path:
        return
    try:
        version = load_config_file(path)
    except ConfigInvalid as exc:
        errors = "\n".join(f"  {problem}" for problem in exc.result.errors)
        message = f"lapis.E001: CONFIG_PATH {path} has {len(exc.result.errors)} error(s); not starting:\n{errors}"
        logger.error(message)
        raise ImproperlyConfigured(message) from None
    if version is not None:
        logger.info("CONFIG_PATH %s loaded as config version %s (active)", path, version.pk)
