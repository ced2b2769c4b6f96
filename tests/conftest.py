"""Fixtures shared by every test: live Lapis servers, a real Chromium, users, screenshots."""

import os
import tempfile
from pathlib import Path

import pytest

from tests.live import LiveServer
from tests.simulator_fixture import SimulatorProcess

# Configs in tests call the simulator and recorders on loopback over plain http: the operator's
# allow-list says so explicitly, as bin/serve does for the demo (nothing allows it by default).
os.environ.setdefault("CONFIG_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1,localhost")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "lapis-screens"))
TEST_PASSWORD = "correct-horse-battery-staple-9"


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _entra_local_only(settings):
    """Entra in tests uses the local identity endpoint only: no test may let azure-identity
    try the cloud metadata address (apps.azure.client.require_local_identity)."""
    settings.ENTRA_LOCAL_IDENTITY_ONLY = True


@pytest.fixture
def live_server_factory(tmp_path_factory):
    """Start fresh Lapis servers (each on its own database); all are stopped after the test."""
    servers = []

    def start(*, extra_env=None, migrate=True):
        server = LiveServer(tmp_path_factory.mktemp("lapis-data"), extra_env=extra_env)
        servers.append(server)
        return server.start(migrate=migrate)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """One Lapis server per test module, on a fresh database with one staff user already made."""
    server = LiveServer(tmp_path_factory.mktemp("lapis-data"))
    server.start()
    server.create_user("admin", TEST_PASSWORD, staff=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live_server_url(live_server):
    return live_server.url


@pytest.fixture
def make_user(live_server):
    """Create a user on the module's live server: ``make_user("bob", staff=False)``."""

    def make(username, *, password=TEST_PASSWORD, staff=False):
        live_server.create_user(username, password, staff=staff)
        return username, password

    return make


@pytest.fixture(scope="session")
def browser():
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make test` (it installs it) or set CHROMIUM")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser, request):
    """A page in a fresh browser context; console errors and CSP violations are collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console",
        lambda message: page.console_errors.append(message.text)
        if message.type == "error"
        else None,
    )
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, "name")`` saves a PNG under SCREENSHOT_DIR for a person to look at."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def login(page, base_url, username, password=TEST_PASSWORD):
    """Sign in through the real login form."""
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=whoami]")


def forget_rate_limit_counters():
    """Drop every rate-limit and budget key from the cache (LocMem in this process, or the Redis db)."""
    from django.conf import settings
    from django.core.cache import cache

    if not settings.REDIS_URL:
        cache.clear()
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("*lapis:rl:*", "*lapis:budget:*"):  # budgets' cached running totals too
        for key in client.scan_iter(pattern):
            client.delete(key)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters start empty: a new test's user (or a live server's, on its fresh
    database) may have the id of an earlier one, while the cache outlives them."""
    from apps.governance.ratelimits import forget_limits

    forget_rate_limit_counters()
    forget_limits()
    yield
    forget_limits()


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Each test starts with no cached model registry (the DB is rolled back between tests)."""
    from apps.azure.registry import reset_registry

    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def activate_config(request):
    """``activate_config(yaml_text)`` loads and activates a config; returns the Registry.

    Fails the test with every error if the text is bad. Uses the test's database access
    (``django_db`` mark or ``transactional_db``), else the ``db`` fixture.
    """
    if not request.node.get_closest_marker("django_db") and "transactional_db" not in request.fixturenames:
        request.getfixturevalue("db")
    from apps.azure.registry import get_registry
    from apps.azure.services import load_and_activate

    def activate(text):
        result = load_and_activate(text=text, source="command")
        if result.errors:
            pytest.fail("config has errors:\n" + "\n".join(str(p) for p in result.errors))
        return get_registry()

    return activate


@pytest.fixture(scope="session")
def azure_simulator():
    """The Azure OpenAI simulator in a subprocess on a free port (see tests/simulator_fixture.py);
    sets LAPIS_SIM_KEY for config_yaml()."""
    simulator = SimulatorProcess().start()
    previous = os.environ.get("LAPIS_SIM_KEY")
    os.environ["LAPIS_SIM_KEY"] = simulator.api_key
    yield simulator
    simulator.stop()
    if previous is None:
        os.environ.pop("LAPIS_SIM_KEY", None)
    else:
        os.environ["LAPIS_SIM_KEY"] = previous


def pytest_collection_modifyitems(config, items):
    """Run browser tests last: the session-scoped sync Playwright keeps an event loop running in
    the main thread, and async tests collected after it would fail with "Runner.run() cannot be
    called from a running event loop"."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
