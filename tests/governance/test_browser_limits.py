"""The socket cap in a real Chromium: the tab over the cap says why and does not hammer."""

import pytest

from tests.chat.conftest import open_chat_page
from tests.conftest import TEST_PASSWORD, login
from tests.live import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory, azure_simulator):
    data = tmp_path_factory.mktemp("capped")
    path = data / "models.yaml"
    path.write_text(azure_simulator.config_yaml(simulated=True, titleConvo=False, summarize=False))
    server = LiveServer(data, extra_env={
        "CONFIG_PATH": str(path), "LAPIS_SIM_KEY": azure_simulator.api_key,
        "CHAT_SOCKETS_PER_USER": "2",
    })
    server.start()
    server.create_user("tess", TEST_PASSWORD)
    yield server
    server.stop()


def test_a_third_tab_over_the_cap_says_why(browser, capped_server):
    open_chat_page(browser, capped_server, "tess")
    open_chat_page(browser, capped_server, "tess")
    context = browser.new_context()
    page = context.new_page()
    login(page, capped_server.url, "tess")
    page.wait_for_selector("[data-testid=chat-error]:not([hidden])", timeout=15_000)
    assert "2 Lapis tabs or windows open" in page.inner_text("[data-testid=chat-error]")
    context.close()
