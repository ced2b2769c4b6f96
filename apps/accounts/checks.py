"""Sign-in configuration problems, as system checks (shown by every manage.py command)."""

from django.conf import settings
from django.core import checks

MULTI_TENANT = ("common", "organizations", "consumers")


def check_sign_in(app_configs=None, **kwargs):
    problems = []
    if not settings.LOCAL_LOGIN and not settings.OIDC_ENABLED:
        problems.append(checks.Error(
            "LOCAL_LOGIN=0 turns the password form off, but no company sign-in is configured, so "
            "nobody could sign in.", hint="Set OIDC_ISSUER or ENTRA_TENANT_ID, or LOCAL_LOGIN=1.",
            id="lapis.E101"))
    if settings.OIDC_ENABLED:
        for name, value in (("OIDC_CLIENT_ID", settings.OIDC_RP_CLIENT_ID),
                            ("OIDC_CLIENT_SECRET", settings.OIDC_RP_CLIENT_SECRET)):
            if not value:
                problems.append(checks.Error(
                    f"{name} is not set, but company sign-in is on (OIDC_ISSUER/ENTRA_TENANT_ID).",
                    hint="Copy it from the app registration (README: Company sign-in).",
                    id="lapis.E102"))
        if settings.OIDC_ISSUER.startswith("http://") and "127.0.0.1" not in settings.OIDC_ISSUER \
                and "localhost" not in settings.OIDC_ISSUER:
            problems.append(checks.Error(
                f"OIDC_ISSUER {settings.OIDC_ISSUER} is plain http: tokens and codes would travel "
                "unencrypted.", hint="Use the https issuer URL.", id="lapis.E103"))
        if settings.ENTRA_TENANT_ID in MULTI_TENANT and not settings.OIDC_ALLOWED_TENANTS:
            problems.append(checks.Error(
                f"ENTRA_TENANT_ID={settings.ENTRA_TENANT_ID} accepts accounts of any organisation, "
                "and OIDC_ALLOWED_TENANTS is empty.",
                hint="List the tenant ids to accept in OIDC_ALLOWED_TENANTS (comma-separated).",
                id="lapis.E104"))
    return problems
