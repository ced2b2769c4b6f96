"""The Markdown sanitiser (static/js/render.js) in a real Chromium, on a page the live server serves."""

import pytest

from tests.live import LiveServer

pytestmark = pytest.mark.browser

RENDER = """async (text) => {
  const { renderMarkdown } = await import('/static/js/render.js');
  const box = document.createElement('div');
  renderMarkdown(box, text);
  return box.innerHTML;
}"""


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """A live server with no users: the login page is enough to load the module from."""
    server = LiveServer(tmp_path_factory.mktemp("lapis-sanitiser")).start()
    yield server
    server.stop()


@pytest.fixture
def render(browser_page, plain_server):
    browser_page.goto(plain_server.url + "/login/")
    return lambda text: browser_page.evaluate(RENDER, text)


@pytest.mark.parametrize(
    "link", ["tel:+15551234", "sms:+15551234", "ftp://files.example/x", "javascript:alert(1)",
             "data:text/html,hi", "foo:bar"]
)
def test_links_of_other_schemes_lose_their_href(render, link):
    html = render(f"[call]({link}) <a href=\"{link}\">raw</a>")
    assert link.split(":")[0] + ":" not in html, html
    assert "call" in html and "raw" in html


def test_http_https_mailto_and_relative_links_stay(render):
    html = render("[a](https://example.com/) [b](http://example.com/) [c](mailto:x@example.com) [d](/c/)")
    for href in ("https://example.com/", "http://example.com/", "mailto:x@example.com", "/c/"):
        assert f'href="{href}"' in html, html


def test_svg_image_feimage_and_background_are_stripped(render):
    html = render(
        '<svg><image href="https://evil.example/a.png"></image>'
        '<filter><feImage href="https://evil.example/b.png"></feImage></filter></svg>'
        '<table background="https://evil.example/c.png"><tr><td background="https://evil.example/d.png">x</td></tr></table>'
    )
    assert "evil.example" not in html, html
    assert "<image" not in html.lower() and "feimage" not in html.lower() and "background" not in html
