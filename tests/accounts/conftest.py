"""The test OpenID Connect provider (session-wide) and live Lapis servers that sign in with it."""

import pytest

# The socket fixtures of the chat tests (a fresh channel layer per test, open_socket).
from tests.chat.conftest import _fresh_channel_layer, open_socket  # noqa: F401
from tests.live import LiveServer
from tests.oidc.provider import TENANT, OidcProvider


@pytest.fixture(scope="session")
def oidc_provider():
    """panva's oidc-provider on 127.0.0.1 (tests/oidc/provider.py), stopped after the session."""
    provider = OidcProvider().start()
    yield provider
    print(provider.log()[-4000:])
    provider.stop()


def start_oidc_server(data_dir, provider, *, extra_env=None, config_text=None):
    """A live Lapis server registered as a client of ``provider``, single-tenant on TENANT, with a
    local admin (so it is past first run). ``server.client_id`` is its client id."""
    env = {"OIDC_ISSUER": provider.issuer, "OIDC_ALLOWED_TENANTS": TENANT}
    if config_text:
        path = data_dir / "models.yaml"
        path.write_text(config_text)
        env["CONFIG_PATH"] = str(path)
    env.update(extra_env or {})
    server = LiveServer(data_dir, extra_env=env)
    client_id, secret = provider.register_client(f"{server.url}/oidc/callback/")
    server.env.update(OIDC_CLIENT_ID=client_id, OIDC_CLIENT_SECRET=secret)
    server.start()
    provider.set_redirect(client_id, f"{server.url}/oidc/callback/")  # start() may change port
    server.client_id = client_id
    server.create_user("localadmin", "Local-admin-pass-42", staff=True)
    return server


def sign_in_with_provider(page, server, login, *, expect_chat=True):
    """Click the company sign-in button and get through the provider's own sign-in pages."""
    page.goto(server.url + "/login/")
    page.click("[data-testid=oidc-sign-in]")
    # The provider remembers its own session: a second sign-in may skip its login page.
    landed = "input[name=login], [data-testid=whoami], [data-testid=signin-refused]"
    if page.wait_for_selector(landed).get_attribute("name") == "login":
        page.fill("input[name=login]", login)
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
        # The provider asks for consent the first time a user signs in to a client.
        consent_or_back = "button[autofocus], [data-testid=whoami], [data-testid=signin-refused]"
        element = page.wait_for_selector(consent_or_back)
        if "/interaction/" in page.url and element.evaluate("e => e.tagName") == "BUTTON":
            element.click()
    if expect_chat:
        page.wait_for_selector("[data-testid=whoami]")
