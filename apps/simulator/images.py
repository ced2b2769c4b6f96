"""Simulated image generation: a real PNG drawn with Pillow, and signed, expiring image URLs.

``render_png(prompt, size) -> bytes`` is deterministic: colours and shapes come from a hash of the
prompt, and the prompt's first words are written on the picture. ``sign_image(...)`` and
``verify_image(...)`` make and check the URL token; the image is redrawn from the token when
fetched, so the simulator keeps no image in memory.
"""

import base64
import hashlib
import hmac
import io
import json
import time

from PIL import Image, ImageDraw, ImageFont

DALLE3_SIZES = ("1024x1024", "1792x1024", "1024x1792")
DALLE2_SIZES = ("256x256", "512x512", "1024x1024")
GPT_IMAGE_SIZES = ("1024x1024", "1024x1536", "1536x1024", "auto")


def parse_size(size):
    width, _, height = (size or "1024x1024").partition("x")
    return int(width), int(height)


def render_png(prompt, size="1024x1024"):
    width, height = parse_size(size if size != "auto" else "1024x1024")
    digest = hashlib.sha256((prompt or "").encode()).digest()
    background = tuple(digest[0:3])
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        b = digest[3 + i * 4 : 7 + i * 4]
        x0, y0 = b[0] * width // 256, b[1] * height // 256
        x1, y1 = x0 + (b[2] * width // 512) + 8, y0 + (b[3] * height // 512) + 8
        colour = tuple(digest[(i * 5 + 7) % 29 : (i * 5 + 7) % 29 + 3])
        if i % 2:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    words = " ".join((prompt or "").split()[:4])[:40]
    band = max(18, height // 12)
    font = ImageFont.load_default(size=band * 2 // 3)
    draw.rectangle((0, height - band, width, height), fill=(255, 255, 255))
    draw.text((band // 4, height - band + band // 8), words, fill=(0, 0, 0), font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_image(secret, *, prompt, size, ttl, now=None):
    """A URL-safe token for an image of ``prompt``/``size`` that expires ``ttl`` seconds on."""
    expires = int((now if now is not None else time.time()) + ttl)
    payload = _b64(json.dumps({"p": prompt[:300], "s": size, "e": expires}).encode())
    mac = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:18])
    return f"{payload}.{mac}", expires


def verify_image(secret, token, *, now=None):
    """``(prompt, size)`` for a valid, unexpired token; None otherwise."""
    payload, _, mac = token.partition(".")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:18])
    if not mac or not hmac.compare_digest(mac, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
    except ValueError:
        return None
    if (now if now is not None else time.time()) >= data["e"]:
        return None
    return data["p"], data["s"]
