"""HTTP endpoints for finding and organising conversations: search, folders, pins, and bulk
archive/delete. Every id is looked up with its owner; another user's is a 404 like a missing one.
"""

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.chat import organise, search
from apps.chat.views import NOT_FOUND, BadRequest, _error, _json_body, _write_view

FOLDER_NOT_FOUND = "No such folder."


def _folder_to_dict(folder):
    return {"id": str(folder.id), "name": folder.name}


def _hit_to_dict(hit):
    conversation = hit.conversation
    return {
        "conversation_id": str(conversation.id),
        "title": conversation.display_title,
        "title_match": hit.title_match,
        "message_id": hit.message_id,
        "snippet": [{"text": text, "hit": is_hit} for text, is_hit in hit.snippet],
        "archived": conversation.archived,
        "folder_id": str(conversation.folder_id) if conversation.folder_id else None,
        "updated": conversation.updated.isoformat(),
    }


@require_GET
def search_view(request):
    """GET ?q=…: the user's conversations matching the words (titles first), each with the
    best matching message and a snippet as [{text, hit}] segments (plain text, never HTML)."""
    try:
        hits = search.search_conversations(user=request.user, query=request.GET.get("q", ""))
    except search.QueryTooLong as exc:
        return _error(f"q: {exc}")
    return JsonResponse({"results": [_hit_to_dict(hit) for hit in hits]})


@require_http_methods(["GET", "POST"])
def folders(request):
    """GET: the user's folders. POST {name}: a new folder."""
    if request.method == "GET":
        return JsonResponse(
            {"folders": [_folder_to_dict(f) for f in organise.folders_of(user=request.user)]}
        )
    try:
        folder = organise.create_folder(user=request.user, name=_json_body(request).get("name"))
    except (BadRequest, organise.OrganiseError) as exc:
        return _error(str(exc))
    return JsonResponse({"folder": _folder_to_dict(folder)}, status=201)


@require_POST
def folder_rename(request, folder_id):
    """{name}: rename the user's folder."""
    folder = organise.folder_for(user=request.user, folder_id=folder_id)
    if folder is None:
        return _error(FOLDER_NOT_FOUND, status=404)
    try:
        folder = organise.rename_folder(folder=folder, name=_json_body(request).get("name"))
    except (BadRequest, organise.OrganiseError) as exc:
        return _error(str(exc))
    return JsonResponse({"folder": _folder_to_dict(folder)})


@require_POST
def folder_delete(request, folder_id):
    """Delete the user's folder; its conversations stay, in no folder."""
    folder = organise.folder_for(user=request.user, folder_id=folder_id)
    if folder is None:
        return _error(FOLDER_NOT_FOUND, status=404)
    organise.delete_folder(folder=folder)
    return JsonResponse({"deleted": str(folder_id)})


def _not_found_as_404(view):
    def wrapped(request, conversation_id):
        try:
            return view(request, conversation_id)
        except organise.NotFound as exc:
            return _error(str(exc), status=404)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@_not_found_as_404
@_write_view
def move(conversation, data):
    """{folder_id: id|null}: put the conversation in one of the user's folders (null: none)."""
    folder_id = data.get("folder_id")
    if folder_id is not None and not isinstance(folder_id, str):
        raise BadRequest("folder_id must be a folder id or null.")
    return organise.move_to_folder(
        user=conversation.owner, conversation=conversation, folder_id=folder_id
    )


@_write_view
def pin(conversation, data):
    """{pinned: true|false}: keep the conversation at the top of the sidebar."""
    pinned = data.get("pinned", True)
    if not isinstance(pinned, bool):
        raise BadRequest("pinned must be true or false.")
    return organise.set_pinned(conversation=conversation, pinned=pinned)


BULK_ACTIONS = ("archive", "unarchive", "delete")


@require_POST
def bulk(request):
    """{action: archive|unarchive|delete, ids: [...]}: all of the user's conversations ``ids``
    or none (any id not the user's is a 404 and nothing changes)."""
    try:
        data = _json_body(request)
        action = data.get("action")
        if action not in BULK_ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(BULK_ACTIONS)}.")
        ids = data.get("ids")
        if action == "delete":
            count = organise.bulk_delete(user=request.user, ids=ids)
        else:
            count = organise.bulk_archive(
                user=request.user, ids=ids, archived=action == "archive"
            )
    except (BadRequest, organise.OrganiseError) as exc:
        return _error(str(exc))
    except organise.NotFound:
        return _error(NOT_FOUND + " Nothing was changed.", status=404)
    return JsonResponse({"action": action, "count": count})

