"""Image services: check, clean and store uploads and generated pictures; derive request sizes.

Every image Lapis keeps went through ``_clean``: its format decided by content (PNG, JPEG, WebP or
GIF only), its size checked from the header before any pixel is decoded, EXIF orientation
applied, metadata dropped, re-encoded. Uploads without transparency become JPEG (quality 88: every
vision model and browser takes it, it encodes fast, and what a vision request costs depends on
the pixel size, not the bytes); images with real transparency become PNG, as do generated
pictures (lossless, they are downloaded as made).
"""

import base64
import contextlib
import hashlib
import io
import os
import re
import secrets
import threading
import unicodedata
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from PIL import ExifTags, Image

from apps.media.models import Attachment

MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
MAX_PER_MESSAGE = 10
# Generated pictures come from the service, not a person; the cap only guards against a bad upstream.
GENERATED_MAX_BYTES = 25 * 1024 * 1024
THUMBNAIL_BOX = (320, 320)
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "GIF": "GIF"}
DETAILS = ("auto", "low", "high")
ENCODINGS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
}
NOT_AN_IMAGE = "is not a PNG, JPEG, WebP or GIF image"


class ImageRejected(ValueError):
    """An image Lapis will not take; ``message`` says which file and why, for the person."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def human_bytes(count):
    """``31 MB``, ``1.5 MB``, ``12 KB``, ``900 bytes``."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= size:
            value = count / size
            text = f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.0f}"
            return f"{text} {unit}"
    return f"{count} bytes"


def clean_filename(name, *, fallback="image"):
    """The last path part of ``name`` without control characters, at most 100 characters."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    return name[:100] or fallback


# -- checking and cleaning ------------------------------------------------------------------


def probe(data, *, name="this file"):
    """``(format, (width, height))`` read from the header only, or ImageRejected.

    Uses the format plugins' header parsers directly, not ``Image.open``, so the size claimed by
    a file is known (and refused) before anything is allocated or decoded.
    """
    Image.init()
    for fmt in FORMATS:
        factory, accept = Image.OPEN[fmt]
        if not accept(data[:64]):
            continue
        try:
            image = factory(io.BytesIO(data), name)
        except Image.DecompressionBombError:
            # WebP's parser checks the size itself before it allocates its canvas.
            raise ImageRejected(
                f"{name} claims more pixels than the {MAX_PIXELS // 1_000_000}-megapixel limit"
            ) from None
        except Exception:
            # The signature matched but the header does not parse.
            raise ImageRejected(
                f"{name} is damaged or truncated: it could not be read as {FORMATS[fmt]}"
            ) from None
        size = image.size
        image.close()
        return fmt, size
    raise ImageRejected(f"{name} {NOT_AN_IMAGE}")


def check_dimensions(size, *, name):
    width, height = size
    if width < 1 or height < 1:
        raise ImageRejected(f"{name} {NOT_AN_IMAGE} (it claims {width}×{height} pixels)")
    if width * height > MAX_PIXELS:
        raise ImageRejected(
            f"{name} claims {width}×{height} pixels, more than the "
            f"{MAX_PIXELS // 1_000_000}-megapixel limit"
        )
    if max(width, height) > MAX_SIDE:
        raise ImageRejected(
            f"{name} claims {width}×{height} pixels; no side may be longer than {MAX_SIDE:,} pixels"
        )


# The memory a decode may take: the decoded pixels in Pillow's layout (4 bytes a pixel for RGB,
# RGBA, CMYK, 1 for L and P, 2 for 16-bit grey). 40 megapixels of RGB fit, no more.
MAX_DECODE_BYTES = 160 * 1024 * 1024
# Decodes bigger than this take turns (one at a time per process), so N at once cost one.
LARGE_DECODE_BYTES = 16 * 1024 * 1024
# Stored images are at most this on their long side (vision requests take at most 2000 px):
# big pictures are reduced while decoding (JPEG) or straight after, band by band.
STORED_MAX_SIDE = 2048
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
_large_decodes = threading.Lock()
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decoded_bytes(size, mode):
    """The bytes Pillow allocates for an image of ``size`` in ``mode``."""
    return size[0] * size[1] * _BYTES_PER_PIXEL.get(mode, 4)


def decode(data, *, name):
    """The first frame of ``data`` as an upright RGB or RGBA image, or ImageRejected.

    Its long side is at most STORED_MAX_SIDE. Memory is bounded: the decoded pixels may take at
    most MAX_DECODE_BYTES (JPEG is decoded at a reduced scale first when it is big), decodes over
    LARGE_DECODE_BYTES run one at a time in the process, and conversions happen on the reduced
    image, or band by band, never as a second full-size copy.
    """
    fmt, size = probe(data, name=name)
    check_dimensions(size, name=name)
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
        image.seek(0)
        if fmt == "JPEG":
            # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding, never below what is kept.
            factor = _reduction(image.size)
            image.draft(None, (image.width // factor, image.height // factor))
        cost = decoded_bytes(image.size, image.mode)
        if cost > MAX_DECODE_BYTES:
            raise ImageRejected(
                f"{name} is {size[0]}×{size[1]} pixels in mode {image.mode}: decoding it would take "
                f"{human_bytes(cost)}, more than the {human_bytes(MAX_DECODE_BYTES)} an image may"
            )
        with _large_decodes if cost > LARGE_DECODE_BYTES else contextlib.nullcontext():
            orientation = image.getexif().get(ExifTags.Base.Orientation)
            image.load()
            image = _normalise(image)
            if orientation in _TRANSPOSE:
                image = image.transpose(_TRANSPOSE[orientation])
            return image
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"{name} claims more pixels than the {MAX_PIXELS // 1_000_000}-megapixel limit"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageRejected(f"{name} is damaged or truncated: it could not be read as {FORMATS[fmt]}") from None


def _reduction(size):
    """The integer factor that brings ``size`` nearest STORED_MAX_SIDE without going below it."""
    return max(1, max(size) // STORED_MAX_SIDE)


def _normalise(image):
    """``image`` (decoded) as RGB, or RGBA when it has real transparency, long side ≤ STORED_MAX_SIDE."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    image = _reduced(image, "RGBA" if has_alpha else "RGB", _reduction(image.size))
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert("RGB")  # fully opaque: no transparency to keep
    if max(image.size) > STORED_MAX_SIDE:
        scale = STORED_MAX_SIDE / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.LANCZOS)
    return image


def _reduced(image, mode, factor):
    """``image`` in ``mode``, shrunk by the integer ``factor`` (box filter).

    Converted and reduced in bands of rows, so no full-size copy in the new mode is made: a
    palette image of 36 megapixels would take 144 MB more as RGB at once.
    """
    if factor == 1:
        return _converted(image, mode)
    if image.mode == mode:
        return image.reduce(factor)
    band = factor * max(1, 256 // factor)  # rows per band: a multiple of factor keeps boxes aligned
    reduced = Image.new(mode, (-(-image.width // factor), -(-image.height // factor)))
    for top in range(0, image.height, band):
        piece = image.crop((0, top, image.width, min(image.height, top + band)))
        reduced.paste(_converted(piece, mode).reduce(factor), (0, top // factor))
    return reduced


def _converted(image, mode):
    if image.mode == mode:
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert(mode)


def encode(image, *, lossless=False):
    """``(bytes, content_type, extension)``: PNG for transparency or lossless, else JPEG q88.

    Saving without ``exif``/``icc_profile``/``pnginfo`` is what drops the metadata.
    """
    buffer = io.BytesIO()
    if image.mode == "RGBA" or lossless:
        image.save(buffer, format="PNG", compress_level=6)
        fmt = "PNG"
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=88, optimize=True)
        fmt = "JPEG"
    content_type, extension = ENCODINGS[fmt]
    return buffer.getvalue(), content_type, extension


def fit_for_detail(size, detail):
    """The pixel size sent for ``detail``: high/auto keep the short side ≤ 768 and long ≤ 2000,
    low fits in 512×512. Never enlarges."""
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    width, height = size
    if detail == "low":
        scale = min(1.0, 512 / width, 512 / height)
    else:
        scale = min(1.0, 768 / min(width, height), 2000 / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


# -- storing --------------------------------------------------------------------------------


def _write_atomic(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:  # e.g. a full disk: leave no half-written temporary behind
        temporary.unlink(missing_ok=True)
        raise


def _thumbnail(image):
    """``image`` scaled to fit THUMBNAIL_BOX (never enlarged), without a full-size copy first."""
    scale = min(1.0, THUMBNAIL_BOX[0] / image.width, THUMBNAIL_BOX[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _store(*, owner, image, name, kind, lossless, **fields):
    data, content_type, extension = encode(image, lossless=lossless)
    relative = f"{owner.pk}/{secrets.token_urlsafe(18)}.{extension}"
    attachment = Attachment(
        owner=owner,
        kind=kind,
        path=relative,
        original_name=name,
        content_type=content_type,
        width=image.width,
        height=image.height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        **fields,
    )
    thumbnail = _thumbnail(image)
    written = [attachment.absolute(), attachment.absolute(attachment.variant_path("thumb"))]
    try:
        _write_atomic(written[0], data)
        _write_atomic(written[1], encode(thumbnail, lossless=lossless)[0])
        attachment.save()
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return attachment


def _read_capped(file, limit, name):
    size = getattr(file, "size", None)
    if size is not None and size > limit:
        raise ImageRejected(f"{name} is {human_bytes(size)}; the limit is {human_bytes(limit)}")
    data = file.read(limit + 1)
    if len(data) > limit:
        raise ImageRejected(f"{name} is larger than {human_bytes(limit)}, the limit")
    if not data:
        raise ImageRejected(f"{name} is empty")
    return data


def create_upload(*, owner, file, name=None):
    """Check, clean and store an uploaded image for ``owner``; returns the Attachment.

    ``file`` is any binary file object (a Django UploadedFile gives its ``size`` and ``name``).
    Raises ImageRejected, with a message naming the file, for anything too big in bytes
    (settings.UPLOAD_MAX_BYTES) or pixels, or not a PNG, JPEG, WebP or GIF image; nothing is
    stored then.
    """
    name = clean_filename(name or getattr(file, "name", ""), fallback="the file")
    data = _read_capped(file, settings.UPLOAD_MAX_BYTES, name)
    image = decode(data, name=name)
    return _store(owner=owner, image=image, name=name, kind=Attachment.Kind.UPLOAD, lossless=False)


def store_generated_image(
    *,
    owner,
    conversation,
    generated,
    prompt,
    model_key,
    message=None,
    size="",
    quality="",
    style="",
):
    """Store a picture from ``apps.azure.images.generate_image`` (a GeneratedImage) as PNG.

    The bytes are checked like an upload (format by content, pixel limits): an upstream that
    answers with something else raises ImageRejected.
    """
    data = generated.data
    if len(data) > GENERATED_MAX_BYTES:
        raise ImageRejected(f"the generated image is {human_bytes(len(data))}, over the limit")
    image = decode(data, name="the generated image")
    return _store(
        owner=owner,
        image=image,
        name=_generated_name(prompt),
        kind=Attachment.Kind.GENERATED,
        lossless=True,
        conversation=conversation,
        message=message,
        prompt=prompt,
        revised_prompt=generated.revised_prompt or "",
        model_key=model_key,
        size=size or "",
        quality=quality or "",
        style=style or "",
    )


def _generated_name(prompt):
    words = re.findall(r"[A-Za-z0-9]+", prompt or "")[:6]
    return "-".join(["lapis", *words]).lower()[:60] + ".png"


def claim_attachments(*, owner, ids, conversation, message):
    """Attach the owner's not yet attached uploads ``ids`` to ``message``; returns them in order.

    Raises ImageRejected for more than MAX_PER_MESSAGE, or for an id that is not the owner's
    free upload (the message does not say whose it is).
    """
    ids = [str(value) for value in ids]
    if len(ids) > MAX_PER_MESSAGE:
        raise ImageRejected(
            f"{len(ids)} images are attached; at most {MAX_PER_MESSAGE} may go with one message"
        )
    if len(set(ids)) != len(ids):
        raise ImageRejected("the same image is attached twice")
    with transaction.atomic():
        found = {
            str(item.pk): item
            for item in Attachment.objects.select_for_update().filter(
                pk__in=ids, owner=owner, kind=Attachment.Kind.UPLOAD, message__isnull=True
            )
        }
        missing = [value for value in ids if value not in found]
        if missing:
            raise ImageRejected(f"attached image {missing[0]} was not found (upload it again)")
        Attachment.objects.filter(pk__in=ids).update(conversation=conversation, message=message)
    claimed = [found[value] for value in ids]
    for item in claimed:
        item.conversation, item.message = conversation, message
    return claimed


# -- deriving -------------------------------------------------------------------------------


def variant_bytes(attachment, *, detail):
    """``(bytes, content_type)`` of the image at the size sent for ``detail``.

    Computed once and kept next to the original; the original itself when it already fits.
    """
    target = fit_for_detail((attachment.width, attachment.height), detail)
    if target == (attachment.width, attachment.height):
        return attachment.absolute().read_bytes(), attachment.content_type
    key = "low" if detail == "low" else "high"
    path = attachment.absolute(attachment.variant_path(key))
    try:
        return path.read_bytes(), attachment.content_type
    except FileNotFoundError:
        pass
    with Image.open(attachment.absolute()) as image:
        image.load()
        resized = image.resize(target, Image.Resampling.LANCZOS)
    data = encode(resized, lossless=attachment.content_type == "image/png")[0]
    _write_atomic(path, data)
    return data, attachment.content_type


def data_url_for(attachment, *, detail):
    """``data:image/...;base64,...`` of the attachment sized for ``detail`` (auto|low|high)."""
    data, content_type = variant_bytes(attachment, detail=detail)
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


adata_url_for = sync_to_async(data_url_for, thread_sensitive=False)


def delete_files(relative_path):
    """Remove a stored image and everything derived from it (used after its row is deleted)."""
    path = Path(settings.MEDIA_ROOT) / relative_path
    stem = path.stem
    for candidate in (path, *path.parent.glob(f"{glob_escape(stem)}.*{path.suffix}")):
        candidate.unlink(missing_ok=True)


def glob_escape(text):
    return re.sub(r"([*?\[])", r"[\1]", text)


def purge_unattached_uploads(*, older_than):
    """Delete uploads never attached to a conversation or message and older than ``older_than`` (a timedelta);
    returns how many. Their files go with the rows (see signals)."""
    from django.utils import timezone

    stale = Attachment.objects.filter(
        kind=Attachment.Kind.UPLOAD,
        message__isnull=True,
        conversation__isnull=True,
        created__lt=timezone.now() - older_than,
    )
    count = 0
    for attachment in stale.iterator():
        with transaction.atomic():
            attachment.delete()
        count += 1
    return count
