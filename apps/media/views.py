"""HTTP for media: upload an image, and serve stored images to their owner only.

Images are never served as anything a browser could run: the stored content type (always an
image type Lapis wrote itself), ``nosniff``, a sandboxing CSP, and a Content-Disposition with a
safe filename.
"""

import re
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from apps.media import images, selectors

# Multipart boundaries and headers on top of the file itself.
MULTIPART_SLACK = 64 * 1024
# Images up to this size are sent from memory; larger ones are streamed from the file.
IN_MEMORY_MAX = 8 * 1024 * 1024


def describe(attachment):
    """The JSON the browser (and the chat) gets for a stored image."""
    return {
        "id": str(attachment.pk),
        "url": reverse("media:file", args=[attachment.pk]),
        "thumbnail_url": reverse("media:thumbnail", args=[attachment.pk]),
        "download_url": reverse("media:file", args=[attachment.pk]) + "?download=1",
        "name": attachment.original_name,
        "width": attachment.width,
        "height": attachment.height,
        "content_type": attachment.content_type,
        "kind": attachment.kind,
        "revised_prompt": attachment.revised_prompt or None,
    }


def _error(message, status=400):
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def upload(request):
    """POST multipart ``file`` → 200 JSON ``describe()``, or 400 ``{"error": ...}``.

    The declared body length is checked before the body is parsed, so an oversized upload is
    refused without being spooled and parsed (CSRF is checked right after, see below).
    """
    limit = settings.UPLOAD_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + MULTIPART_SLACK:
        return _error(
            f"the upload is {images.human_bytes(declared)}; the limit is {images.human_bytes(limit)}"
        )
    return _upload_checked(request)


@csrf_protect
def _upload_checked(request):
    files = request.FILES.getlist("file")
    if len(files) != 1:
        return _error("send exactly one image in the form field 'file'")
    try:
        attachment = images.create_upload(owner=request.user, file=files[0])
    except images.ImageRejected as exc:
        return _error(exc.message)
    return JsonResponse(describe(attachment))


def _owned(request, pk):
    attachment = selectors.get_owned_attachment(owner=request.user, attachment_id=pk)
    if attachment is None:  # someone else's id answers exactly like an id that does not exist
        raise Http404("no such image")
    return attachment


def download_name(attachment):
    """The stored name's stem in safe characters, with the extension of what is served."""
    stem = Path(attachment.original_name or "image").stem
    stem = re.sub(r"[^\w .()-]+", "_", stem).strip(" .") or "image"
    return f"{stem}.{attachment.extension}"


def serve_stored(request, attachment, relative):
    """Serve a stored image file (``attachment``: anything with Attachment's file layout) with
    the headers that keep a browser from running it; the caller has checked who may see it."""
    path = attachment.absolute(relative)
    try:
        size = path.stat().st_size
        if size <= IN_MEMORY_MAX:
            # Under ASGI a plain response avoids FileResponse's synchronous iterator, which
            # Django would have to drain in a thread for every image (and warns about).
            response = HttpResponse(path.read_bytes(), content_type=attachment.content_type)
        else:
            response = FileResponse(open(path, "rb"), content_type=attachment.content_type)
    except FileNotFoundError:
        raise Http404("image file missing") from None
    as_attachment = request.GET.get("download") == "1"
    response["Content-Disposition"] = content_disposition_header(
        as_attachment, download_name(attachment)
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # The bytes behind an id never change; only the owner's browser may keep them.
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_GET
def file(request, pk):
    attachment = _owned(request, pk)
    return serve_stored(request, attachment, attachment.path)


@require_GET
def thumbnail(request, pk):
    attachment = _owned(request, pk)
    return serve_stored(request, attachment, attachment.variant_path("thumb"))
