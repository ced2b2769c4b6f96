"""Company sign-in over OpenID Connect (Microsoft Entra ID first), on mozilla-django-oidc.

Why mozilla-django-oidc: it does one thing (the authorization-code flow for an RP), is small
enough to read whole, is maintained, and already does state, nonce, PKCE and JWKS signature
checks; allauth would bring accounts, e-mail and templates we don't want. What it lacks, this
module adds: endpoints from the issuer's discovery document, the ID token's audience, issuer and
expiry checked, claims taken from the ID token (Entra puts groups and roles there, not in
userinfo), users matched on (issuer, oid/sub) rather than e-mail, tenant and e-mail-domain rules,
groups and roles synced on every sign-in, and a readable page for every refusal.
"""

import logging
import threading
import time

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404
from django.shortcuts import render
from django.utils.decorators import method_decorator
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.accounts import throttle
from apps.accounts.models import ExternalIdentity

logger = logging.getLogger("lapis.accounts")
DISCOVERY_TTL = 3600
LEEWAY = 60  # seconds of clock skew allowed on exp/iat/nbf
OVERAGE_ADVICE = (
    "Entra sent a group overage claim instead of the user's groups (more than 200 groups, or "
    "150 in a SAML-style token), so Lapis cannot see them and granted none from groups. Fix it in "
    "Entra: assign the groups to Lapis's app roles (Enterprise applications → Lapis → Users and "
    "groups) and use role names in access rules, or set Token configuration → groups claim to "
    "'Groups assigned to the application'."
)

_discovery = {}
_discovery_lock = threading.Lock()


class SignInRefused(SuspiciousOperation):
    """A sign-in the IdP allowed but Lapis refuses; ``str()`` is shown to the person."""


def discovery():
    """The issuer's openid-configuration, fetched once an hour; its issuer must match ours."""
    with _discovery_lock:
        cached = _discovery.get(settings.OIDC_ISSUER)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        url = settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration"
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, allow_redirects=False)
        response.raise_for_status()
        document = response.json()
        if not _issuer_matches(document.get("issuer", ""), settings.OIDC_ISSUER):
            raise SuspiciousOperation(
                f"the discovery document at {url} names issuer {document.get('issuer')!r}, "
                f"not OIDC_ISSUER {settings.OIDC_ISSUER!r}"
            )
        _discovery[settings.OIDC_ISSUER] = (time.monotonic() + DISCOVERY_TTL, document)
        return document


def forget_discovery():
    with _discovery_lock:
        _discovery.clear()


def _issuer_matches(actual, expected, *, tenant=None):
    """Entra's multi-tenant documents say ``.../{tenantid}/v2.0``: it stands for the token's tid."""
    actual, expected = actual.rstrip("/"), expected.rstrip("/")
    if tenant and "{tenantid}" in expected:
        expected = expected.replace("{tenantid}", tenant)
    if "{tenantid}" in actual and tenant is None:
        return True  # the discovery document itself: checked against each token's tid later
    return actual == expected


def _endpoint(name):
    return discovery()[name]


class _DiscoverySettings:
    """mozilla-django-oidc reads endpoints from settings; ours come from discovery."""

    ENDPOINTS = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
        "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
        "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
        "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    }

    @classmethod
    def get_settings(cls, attr, *args):
        if attr in cls.ENDPOINTS:
            return _endpoint(cls.ENDPOINTS[attr])
        if attr == "OIDC_CREATE_USER":
            return True  # create_user below decides, with a readable refusal
        return getattr(settings, attr, *args) if args else getattr(settings, attr)


class LapisOIDCBackend(_DiscoverySettings, OIDCAuthenticationBackend):
    """Authenticates the callback of the code flow. Never touches the IdP outside a sign-in."""

    def __init__(self, *args, **kwargs):
        # The parent resolves every endpoint here, and Django builds a backend for each request's
        # get_user(): endpoints are resolved lazily below instead, so an IdP outage never breaks
        # pages for people already signed in.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: _endpoint("token_endpoint"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: _endpoint("userinfo_endpoint"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: _endpoint("jwks_uri"))

    def authenticate(self, request, **kwargs):
        try:
            return super().authenticate(request, **kwargs)
        except SignInRefused as exc:
            request.lapis_signin_refused = str(exc)
        except SuspiciousOperation as exc:
            request.lapis_signin_refused = f"The sign-in could not be verified: {exc}"
        except requests.RequestException as exc:
            logger.warning("OIDC: the identity provider could not be reached: %s", exc)
            request.lapis_signin_refused = (
                "The identity provider could not be reached or refused the code; try again."
            )
        return None

    def _refuse(self, message):
        # get_or_create_user swallows SuspiciousOperation, so the reason rides on the request.
        self.request.lapis_signin_refused = message
        raise SignInRefused(message)

    def _verify_jws(self, payload, key):
        """Signature (RS256 only), audience = our client id, issuer, exp/iat/nbf with leeway."""
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"the ID token is signed with {header.get('alg')!r}, not RS256")
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SuspiciousOperation("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise SuspiciousOperation("the ID token was issued for another application") from None
        except jwt.InvalidSignatureError:
            raise SuspiciousOperation("the ID token's signature does not match the issuer's keys") from None
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token is not valid ({exc})") from None
        if not _issuer_matches(claims["iss"], discovery()["issuer"], tenant=claims.get("tid")):
            raise SuspiciousOperation(f"the ID token comes from another issuer ({claims['iss']})")
        return claims

    def get_userinfo(self, access_token, id_token, payload):
        """The verified ID token's claims: Entra's groups and roles are only there."""
        return payload

    def verify_claims(self, claims):
        tenants = settings.OIDC_ALLOWED_TENANTS
        if tenants and claims.get("tid") not in tenants:
            self._refuse(
                "Your account belongs to another organisation (tenant) than the one this Lapis "
                "accepts. Sign in with your work account of the right organisation."
            )
        domains = settings.OIDC_ALLOWED_EMAIL_DOMAINS
        email = (claims.get("email") or claims.get("preferred_username") or "").lower()
        if domains and email.rpartition("@")[2] not in domains:
            self._refuse(
                f"Accounts with the e-mail address {email or '(none)'} may not use this Lapis: "
                f"only {', '.join('@' + d for d in domains)}."
            )
        return True

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(
            external_identity__issuer=claims["iss"], external_identity__subject=_subject(claims)
        )

    def create_user(self, claims):
        if not settings.OIDC_CREATE_USERS:
            self._refuse(
                "You have no Lapis account yet, and accounts are not created on first sign-in "
                "here. Ask a Lapis admin to add you."
            )
        with transaction.atomic():
            user = self.UserModel.objects.create_user(_free_username(claims))
            ExternalIdentity.objects.create(
                user=user, issuer=claims["iss"], subject=_subject(claims), tenant=claims.get("tid", "")
            )
            return self.update_user(user, claims)

    def update_user(self, user, claims):
        """Name, e-mail, groups, roles and the admin flag follow the IdP at every sign-in."""
        if not user.is_active:
            self._refuse("Your Lapis account is deactivated. Ask a Lapis admin.")
        sync_user(user=user, claims=claims)
        return user


def _subject(claims):
    return claims.get("oid") or claims["sub"]


def _free_username(claims):
    base = (claims.get("preferred_username") or claims.get("email") or _subject(claims))[:140]
    User = get_user_model()
    name, n = base, 1
    while User.objects.filter(username=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def idp_groups(claims):
    """``(names, overage)``: the group ids and app roles the token grants, and whether Entra
    left the groups out because there were too many."""
    overage = "groups" in (claims.get("_claim_names") or {}) or bool(claims.get("hasgroups"))
    names = [str(role) for role in claims.get("roles") or []]
    if not overage:
        names += [str(group) for group in claims.get("groups") or []]
    return sorted(set(names)), overage


@transaction.atomic
def sync_user(*, user, claims):
    """Apply the claims of one verified sign-in to ``user`` (groups replaced, not merged)."""
    full_name = claims.get("name") or ""
    user.first_name = (claims.get("given_name") or full_name.partition(" ")[0])[:150]
    user.last_name = (claims.get("family_name") or full_name.partition(" ")[2])[:150]
    user.email = (claims.get("email") or "")[:254]
    names, overage = idp_groups(claims)
    if settings.OIDC_ADMIN_ROLES:
        admin = bool(set(names) & set(settings.OIDC_ADMIN_ROLES))
        user.is_staff = user.is_superuser = admin
    user.save()
    groups = [Group.objects.get_or_create(name=name[:150])[0] for name in names]
    user.groups.set(groups)
    ExternalIdentity.objects.filter(user=user).update(groups_overage=overage, tenant=claims.get("tid", ""))
    if overage:
        logger.warning("OIDC: user %s: %s", user.get_username(), OVERAGE_ADVICE)


@method_decorator(login_not_required, name="dispatch")
class SignInStart(_DiscoverySettings, OIDCAuthenticationRequestView):
    """Redirects to the IdP with state, nonce and a PKCE challenge kept in the session."""

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    OIDC_OP_AUTH_ENDPOINT = property(lambda self: _endpoint("authorization_endpoint"))

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Company sign-in is not configured (OIDC_ISSUER or ENTRA_TENANT_ID).")
        try:
            return super().get(request)
        except (requests.RequestException, SuspiciousOperation, ValueError) as exc:
            logger.warning("OIDC: discovery failed for %s: %s", settings.OIDC_ISSUER, exc)
            return refused(request, "The identity provider could not be reached; try again later.", status=502)


@method_decorator(login_not_required, name="dispatch")
class SignInCallback(_DiscoverySettings, OIDCAuthenticationCallbackView):
    """The IdP's redirect back: code exchanged, ID token verified, user signed in or refused."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Company sign-in is not configured (OIDC_ISSUER or ENTRA_TENANT_ID).")
        state = request.GET.get("state")
        if "code" in request.GET and state not in request.session.get("oidc_states", {}):
            # A replayed or forwarded callback: its state was used up or never issued here.
            return self._refuse("This sign-in link was already used or belongs to another browser "
                                "session. Start again from the sign-in page.")
        return super().get(request)

    def login_failure(self):
        reason = getattr(self.request, "lapis_signin_refused", None)
        if not reason and self.request.GET.get("error"):
            reason = f"The identity provider refused the sign-in ({self.request.GET['error'][:80]})."
        return self._refuse(reason or "The sign-in did not complete. Start again from the sign-in page.")

    def _refuse(self, reason):
        throttle.log_refusal(kind="refused (OIDC)", username="", address=throttle.client_address(self.request), reason=reason)
        return refused(self.request, reason)


def refused(request, reason, *, status=403):
    return render(request, "accounts/signin_refused.html", {"reason": reason}, status=status)
