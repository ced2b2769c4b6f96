"""Image decoding within a memory budget (issue 13): a 100 KB 6000×6000 PNG cost +412 MB at
peak, three at once +983 MB. Big pictures are now reduced while (JPEG) or straight after
decoding, converted band by band, take turns beyond a size, and a limit counts the bytes the
decoded pixels take in their mode."""

import asyncio
import io
from pathlib import Path

import aiohttp
import pytest
from PIL import ExifTags, Image
from yarl import URL

from apps.media import images
from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer
from tests.media import imagefiles

# The Daphne process's peak RSS growth while it takes three 6000×6000 uploads at once: each
# decoded in full took ~415 MB before (three at once ~1,170 MB); within the budget the three
# together take ~250 MB, up to ~400 MB seen with the allocator's slack on a loaded machine.
THREE_BIG_UPLOADS_BUDGET_MB = 600


def _solid_png(width, height, mode="RGB"):
    return imagefiles.encoded(Image.new(mode, (width, height), 90), "PNG", compress_level=9)


def _rss_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("decode"))
    live.start()
    live.create_user("decode-user", TEST_PASSWORD)
    yield live
    live.stop()


async def _upload(session, server, data, name):
    token = session.cookie_jar.filter_cookies(URL(server.url))["csrftoken"].value
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="image/png")
    async with session.post(
        server.url + "/media/uploads/", data=form, headers={"X-CSRFToken": token, "Origin": server.url}
    ) as response:
        return response.status, await response.json()


async def test_three_huge_small_pngs_at_once_are_stored_reduced_within_the_budget(server):
    data = _solid_png(6000, 6000)
    assert len(data) < 200 * 1024
    signed_in = await Browserless.sign_in(server, "decode-user")
    pid = server.process.pid
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS from here
        resting = _rss_kb(pid, "VmRSS")
        answers = await asyncio.gather(
            *(_upload(signed_in.session, server, data, f"big{n}.png") for n in range(3))
        )
        growth_mb = (_rss_kb(pid, "VmHWM") - resting) / 1024
    finally:
        await signed_in.session.close()
    for status, body in answers:
        assert status == 200, body
        assert (body["width"], body["height"]) == (images.STORED_MAX_SIDE, images.STORED_MAX_SIDE)
    assert growth_mb < THREE_BIG_UPLOADS_BUDGET_MB, f"three decodes took +{growth_mb:.0f} MB at peak"


def test_the_decode_limit_counts_the_bytes_of_the_mode(monkeypatch):
    # 6000×6000 is 36 MB as grey (1 byte a pixel) and 144 MB as RGB (Pillow keeps 4).
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 64 * 1024 * 1024)
    grey = images.decode(_solid_png(6000, 6000, mode="L"), name="grey.png")
    assert grey.size == (2048, 2048) and grey.mode == "RGB"
    with pytest.raises(images.ImageRejected) as refused:
        images.decode(_solid_png(6000, 6000), name="colour.png")
    assert refused.value.message == (
        "colour.png is 6000×6000 pixels in mode RGB: decoding it would take 137 MB, "
        "more than the 64 MB an image may"
    )


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_and_turned_upright():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: the upright picture is portrait
    data = imagefiles.encoded(imagefiles.two_colour(4100, 2000), "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as original:
        original.draft("RGB", (2050, 1000))
        assert original.size == (2050, 1000)  # libjpeg can scale this one by 1/2 while decoding
    image = images.decode(data, name="sideways.jpg")
    assert image.size == (999, 2048)
    # two_colour: red left half, blue right; after rotating 270° red is on top.
    assert image.getpixel((500, 10))[0] > 200 and image.getpixel((500, 2030))[2] > 200


def test_a_big_palette_png_keeps_its_colours_through_the_banded_conversion():
    picture = imagefiles.two_colour(5000, 3000).convert("P")
    image = images.decode(imagefiles.encoded(picture, "PNG"), name="palette.png")
    assert image.size == (2048, 1229) and image.mode == "RGB"
    assert image.getpixel((10, 600))[:3] == (255, 0, 0)
    assert image.getpixel((2040, 600))[:3] == (0, 0, 255)
