"""Export (one conversation as Markdown or JSON, all of them as a zip) and import.

Every conversation is looked up with its owner: another user's id is a 404 like a missing one.
The import takes one file in the multipart field ``file``; its size is refused before parsing
(``project.bodies`` caps the request at IMPORT_MAX_BYTES plus the multipart slack).
"""

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from apps.azure.registry import get_registry
from apps.chat import selectors as chat_selectors
from apps.media.views import MULTIPART_SLACK
from apps.transfer import exporting, importing


def _owned(request, conversation_id):
    conversation = chat_selectors.conversation_for(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def _download(body, *, content_type, filename):
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def export_json(request, conversation_id):
    conversation = _owned(request, conversation_id)
    name = exporting.safe_filename(conversation.display_title) + ".json"
    return _download(exporting.conversation_json(conversation=conversation),
                     content_type="application/json; charset=utf-8", filename=name)


@require_GET
def export_markdown(request, conversation_id):
    conversation = _owned(request, conversation_id)
    name = exporting.safe_filename(conversation.display_title) + ".md"
    return _download(exporting.conversation_markdown(conversation=conversation),
                     content_type="text/markdown; charset=utf-8", filename=name)


@require_GET
def export_all(request):
    """A zip of every conversation (JSON and Markdown each, and their images), streamed."""
    response = StreamingHttpResponse(exporting.zip_stream(user=request.user), content_type="application/zip")
    name = f"lapis-{request.user.get_username()}-{timezone.now():%Y-%m-%d}.zip"
    response["Content-Disposition"] = content_disposition_header(True, exporting.safe_filename(name[:-4]) + ".zip")
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "") or request.GET.get("format") == "json"


def _page(request, *, report=None, error=None, status=200):
    if _wants_json(request):
        body = {"error": error} if error else report.as_dict()
        return JsonResponse(body, status=status)
    return render(
        request, "transfer/page.html",
        {"report": report, "error": error, "max_bytes": importing.human_bytes(settings.IMPORT_MAX_BYTES)},
        status=status,
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def import_page(request):
    """GET: the import and export page. POST ``file``: import it; the report as HTML, or JSON
    for ``Accept: application/json``. The declared size is checked before the body is parsed;
    CSRF right after (as for uploads)."""
    if request.method == "GET":
        return _page(request)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.IMPORT_MAX_BYTES + MULTIPART_SLACK:
        return _page(request, error=importing.too_big_message(declared), status=413)
    return _import_checked(request)


@csrf_protect
def _import_checked(request):
    files = request.FILES.getlist("file")
    if len(files) != 1:
        return _page(request, error="Choose one export file (field 'file').", status=400)
    upload = files[0]
    if upload.size > settings.IMPORT_MAX_BYTES:
        return _page(request, error=importing.too_big_message(upload.size), status=413)
    chat_models = get_registry().for_user(request.user).chat_models()
    try:
        report = importing.import_file(
            user=request.user, data=upload.read(), default_model_key=chat_models[0].key if chat_models else ""
        )
    except importing.ImportRefused as exc:
        return _page(request, error=str(exc), status=400)
    return _page(request, report=report)
