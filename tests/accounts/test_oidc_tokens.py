"""ID-token checks against the real provider's discovery and JWKS, and the whole code flow over
HTTP (Django's test client on our side, the provider's own pages on the other)."""

import re
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation

from apps.accounts import oidc
from tests.oidc.provider import TENANT, entra_claims

pytestmark = pytest.mark.django_db
CALLBACK = "http://testserver/oidc/callback/"


@pytest.fixture
def oidc_settings(settings, oidc_provider):
    client_id, secret = oidc_provider.register_client(CALLBACK)
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = client_id
    settings.OIDC_RP_CLIENT_SECRET = secret
    settings.OIDC_ALLOWED_TENANTS = [TENANT]
    settings.OIDC_ALLOWED_EMAIL_DOMAINS = []
    settings.OIDC_ADMIN_ROLES = ["Lapis.Admin"]
    settings.OIDC_CREATE_USERS = True
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend", "apps.accounts.oidc.LapisOIDCBackend"]
    oidc.forget_discovery()
    get_user_model().objects.create_user("localadmin", password="x-Local-admin-42", is_staff=True)
    yield settings
    oidc.forget_discovery()


def token_claims(provider, settings, **overrides):
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": settings.OIDC_RP_CLIENT_ID, "sub": "s1", "iat": now,
              "exp": now + 600, "nonce": "n-1", **entra_claims("tok")}
    claims.update(overrides)
    return claims


def verify(token, nonce="n-1"):
    backend = oidc.LapisOIDCBackend()
    return backend.verify_token(token, nonce=nonce)


def test_a_good_token_verifies(oidc_provider, oidc_settings):
    claims = verify(oidc_provider.sign(token_claims(oidc_provider, oidc_settings)))
    assert claims["tid"] == TENANT


@pytest.mark.parametrize(("overrides", "message"), [
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ({"aud": "some-other-app"}, "another application"),
    ({"iss": "http://127.0.0.1:1"}, "another issuer"),
])
def test_bad_tokens_are_refused(oidc_provider, oidc_settings, overrides, message):
    token = oidc_provider.sign(token_claims(oidc_provider, oidc_settings, **overrides))
    with pytest.raises(SuspiciousOperation, match=message):
        verify(token)


def test_a_wrong_nonce_is_refused(oidc_provider, oidc_settings):
    token = oidc_provider.sign(token_claims(oidc_provider, oidc_settings))
    with pytest.raises(SuspiciousOperation, match="Nonce"):
        verify(token, nonce="another-nonce")


def test_a_token_signed_with_another_key_is_refused(oidc_provider, oidc_settings):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = oidc_provider.sign(token_claims(oidc_provider, oidc_settings), key=other)
    with pytest.raises(SuspiciousOperation, match="signature"):
        verify(token)


# ----------------------------------------------------------------------- the whole flow over HTTP
def provider_sign_in(authorize_url, login):
    """Walk the provider's own login and consent pages; return the redirect back to Lapis."""
    browser = requests.Session()
    response = browser.get(authorize_url, allow_redirects=False)
    for _step in range(12):
        location = response.headers.get("location")
        if location and location.startswith(CALLBACK):
            return location
        if location:
            response = browser.get(urljoin(response.url, location), allow_redirects=False)
            continue
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', response.text))
        if 'name="login"' in response.text:
            fields.update(login=login, password="any")
        response = browser.post(urljoin(response.url, action), data=fields, allow_redirects=False)
    raise AssertionError(f"the provider never redirected back: {response.status_code} {response.text[:500]}")


def start(client):
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    return response.url


def callback(client, location):
    return client.get(urlsplit(location).path + "?" + urlsplit(location).query)


def test_the_code_flow_signs_in_and_follows_the_admin_role(client, oidc_provider, oidc_settings):
    oidc_provider.set_user("dora", entra_claims("dora", roles=["Lapis.Admin"], groups=["g1"]))
    response = callback(client, provider_sign_in(start(client), "dora"))
    assert response.status_code == 302, response.content.decode()[:500]
    dora = get_user_model().objects.get(username="dora@contoso.com")
    assert client.session["_auth_user_id"] == str(dora.pk) and dora.is_staff and dora.is_superuser
    # The role goes in Entra: the next sign-in removes the admin rights and the group.
    oidc_provider.set_user("dora", entra_claims("dora", groups=[]))
    client.logout()
    assert callback(client, provider_sign_in(start(client), "dora")).status_code == 302
    dora.refresh_from_db()
    assert not dora.is_staff and not dora.is_superuser and not dora.groups.exists()


def test_the_code_flow_refuses_a_tampered_nonce(client, oidc_provider, oidc_settings):
    oidc_provider.set_user("nina", entra_claims("nina"))
    authorize = start(client)
    session = client.session
    for entry in session["oidc_states"].values():
        entry["nonce"] = "not-the-nonce-sent"
    session.save()
    response = callback(client, provider_sign_in(authorize, "nina"))
    assert response.status_code == 403 and "Nonce" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_replayed_callback_is_refused(client, oidc_provider, oidc_settings):
    oidc_provider.set_user("rita", entra_claims("rita"))
    location = provider_sign_in(start(client), "rita")
    assert callback(client, location).status_code == 302
    client.logout()
    response = callback(client, location)
    assert response.status_code == 403 and "already used" in response.content.decode()


def test_group_overage_keeps_roles_and_is_reported(client, oidc_provider, oidc_settings, caplog):
    oidc_provider.set_user("olga", entra_claims(
        "olga", groups=[], roles=["Chat.Basic"], _claim_names={"groups": "src1"},
        _claim_sources={"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}))
    assert callback(client, provider_sign_in(start(client), "olga")).status_code == 302
    olga = get_user_model().objects.get(username="olga@contoso.com")
    assert list(olga.groups.values_list("name", flat=True)) == ["Chat.Basic"]
    assert olga.external_identity.groups_overage
    assert "group overage" in caplog.text


def test_no_account_creation_refuses_a_new_user(client, oidc_provider, oidc_settings):
    oidc_settings.OIDC_CREATE_USERS = False
    oidc_provider.set_user("newbie", entra_claims("newbie"))
    response = callback(client, provider_sign_in(start(client), "newbie"))
    assert response.status_code == 403 and "Ask a Lapis admin" in response.content.decode()


def test_local_login_off_refuses_the_password_form(client, oidc_settings):
    oidc_settings.LOCAL_LOGIN = False
    page = client.get("/login/").content.decode()
    assert "data-testid=\"oidc-sign-in\"" in page and "data-testid=\"login-form\"" not in page
    response = client.post("/login/", {"username": "localadmin", "password": "x-Local-admin-42"})
    assert response.status_code == 403 and "_auth_user_id" not in client.session


def test_with_local_login_off_the_first_run_admin_still_works(client, settings):
    from apps.accounts.first_run import forget_setup_state, setup_token

    settings.LOCAL_LOGIN = False
    forget_setup_state()
    try:
        response = client.post("/setup/", {
            "setup_token": setup_token(), "username": "owner", "email": "o@example.org",
            "password1": "Zebra-crossing-42!", "password2": "Zebra-crossing-42!"})
        assert response.status_code == 302
        owner = get_user_model().objects.get(username="owner")
        assert owner.is_superuser and client.session["_auth_user_id"] == str(owner.pk)
    finally:
        forget_setup_state()


def test_a_missing_client_secret_is_a_system_check_error(settings):
    from apps.accounts.checks import check_sign_in

    settings.OIDC_ENABLED, settings.OIDC_ISSUER = True, "https://login.microsoftonline.com/t/v2.0"
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = "id", ""
    settings.LOCAL_LOGIN = True
    assert [p.id for p in check_sign_in()] == ["lapis.E102"]
    settings.LOCAL_LOGIN, settings.OIDC_ENABLED = False, False
    assert [p.id for p in check_sign_in()] == ["lapis.E101"]
