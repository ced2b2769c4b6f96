"""Images in the chat in a real Chromium: attach by the file picker, and generate with an image model."""

import base64
import json

import pytest

from tests.chat.conftest import open_chat_page, start_simulated_server
from tests.media.imagefiles import png

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def media_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False
    )
    yield server
    server.stop()


@pytest.fixture
def page(browser, media_server):
    page = open_chat_page(browser, media_server, "alice", height=900, timeout=20_000)
    yield page
    page.context.close()
    print(media_server.log()[-6000:])  # pytest shows it when the test failed


def loaded(page, selector):
    """Wait until every image matching ``selector`` has really loaded (naturalWidth > 0)."""
    page.wait_for_function(
        "sel => { const imgs = [...document.querySelectorAll(sel)];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector,
    )


def test_attach_by_file_picker_see_thumbnail_and_answer(page, tmp_path, screenshot):
    # File names are shown (alt text, error messages): HTML in them must stay text.
    picture = tmp_path / "harbour <img src=x onerror=window.pwned=1>.png"
    picture.write_bytes(png(900, 600))
    bogus = tmp_path / "setup<svg onload=window.pwned=2>.png"
    bogus.write_bytes(b"MZ\x90\x00 not really a picture")
    page.select_option("[data-testid=model-picker]", "gpt-4o")
    assert page.locator("[data-testid=image-options]").is_hidden()

    page.set_input_files("[data-testid=attach-input]", [str(picture), str(bogus)])
    page.wait_for_selector("[data-testid=attachment-chip][data-attachment-id]")
    error = page.locator("[data-testid=attach-error]")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("setup<svg onload=window.pwned=2>.png: ")
    assert "is not a PNG, JPEG, WebP or GIF image" in error.inner_text()
    assert page.locator("[data-testid=attach-error] svg").count() == 0
    assert page.locator("[data-testid=attachment-chip]").count() == 1
    loaded(page, "[data-testid=attachment-chip] img")
    screenshot(page, "media-attach-tray")

    page.fill("[data-testid=composer-input]", "What is in this picture? [sim:report]")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    page.locator("[data-testid=attachment-chip]").first.wait_for(state="detached")
    question = page.locator("[data-testid=message][data-role=user]").last
    loaded(page, "[data-role=user] [data-testid=attachment] img")
    assert question.locator("[data-testid=attachment] img").get_attribute("alt") == picture.name
    assert question.locator("img:not([data-testid=attachment] img)").count() == 0
    href = question.locator("[data-testid=attachment] a").get_attribute("href")
    assert href.startswith("/media/") and "thumbnail" not in href
    answer = page.locator("[data-testid=message][data-role=assistant]").last
    report = json.loads(answer.locator("[data-testid=message-body]").inner_text().split("REPORT ", 1)[1])
    assert (report["images"], report["details"]) == (1, ["auto"])
    screenshot(page, "media-vision-answer")

    page.reload()
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    loaded(page, "[data-role=user] [data-testid=attachment] img")
    assert page.evaluate("window.pwned") is None
    # The refused upload's 400 is the only thing the browser logs.
    assert [e for e in page.console_errors if "status of 400" not in e] == []


DROP_AND_PASTE = """
async ([kind, b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/png" }));
  if (kind === "drop") {
    const root = document.querySelector("[data-chat]");
    root.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
    root.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
  } else {
    const input = document.querySelector("[data-testid=composer-input]");
    input.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  }
}
"""


def test_attach_by_drag_and_drop_and_by_paste(page, screenshot):
    page.select_option("[data-testid=model-picker]", "gpt-4o")
    picture = base64.b64encode(png(320, 200)).decode()
    page.evaluate(DROP_AND_PASTE, ["drop", picture, "dropped.png"])
    page.evaluate(DROP_AND_PASTE, ["paste", picture, "pasted.png"])
    chips = page.locator("[data-testid=attachment-chip][data-attachment-id]")
    chips.nth(1).wait_for()
    assert chips.count() == 2
    loaded(page, "[data-testid=attachment-chip] img")
    screenshot(page, "media-drop-and-paste")
    page.fill("[data-testid=composer-input]", "Two pictures [sim:report]")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    answer = page.locator("[data-testid=message][data-role=assistant]").last
    report = json.loads(answer.locator("[data-testid=message-body]").inner_text().split("REPORT ", 1)[1])
    assert report["images"] == 2
    assert page.console_errors == []


def test_generate_an_image_and_see_it_inline(page, screenshot):
    page.select_option("[data-testid=model-picker]", "dall-e-3")
    options = page.locator("[data-testid=image-options]")
    options.wait_for(state="visible")
    assert page.locator("[data-testid=attach]").is_disabled()
    sizes = page.eval_on_selector_all("[data-testid=image-size] option", "els => els.map(e => e.value)")
    assert sizes == ["1024x1024", "1792x1024", "1024x1792"]
    page.select_option("[data-testid=image-size]", "1792x1024")
    page.select_option("[data-testid=image-style]", "natural")
    page.fill("[data-testid=composer-input]", "a lighthouse on a cliff at dusk")
    page.keyboard.press("Enter")
    answer = page.locator("[data-testid=message][data-role=assistant]").last
    page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]")
    loaded(page, "[data-role=assistant] [data-testid=attachment] img")
    revised = answer.locator("[data-testid=revised-prompt]").inner_text()
    assert revised.startswith("a lighthouse on a cliff at dusk, rendered as")
    download = answer.locator("[data-testid=download]").get_attribute("href")
    assert download.endswith("?download=1")
    size = answer.locator("[data-testid=attachment] img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [1792, 1024]
    screenshot(page, "media-generated-inline")

    page.reload()
    loaded(page, "[data-role=assistant] [data-testid=attachment] img")
    assert page.locator("[data-testid=model-picker]").input_value() == "dall-e-3"
    assert page.console_errors == []
