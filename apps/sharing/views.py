"""Share links: the owner's pages (make, list, revoke) and the viewer's (read, images, continue).

A viewer reaches a share only through its token and only when ``Share.visible_to`` says so;
anything else (unknown token, revoked, outside the audience) is the same 404. Anonymous people
never get here: the login-required middleware sends them to sign in first.
"""

from django.contrib import messages as flash
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.azure.registry import get_registry
from apps.chat import selectors as chat_selectors
from apps.media.views import serve_stored
from apps.sharing import selectors, services
from apps.sharing.models import SharedImage

NOT_FOUND = "No such share link (it may have been revoked, or is not shared with you)."
PREVIEW_CHARS = 80


def _split_names(text):
    return [part for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def _branch_choices(conversation):
    """The current branch's messages as (id, label) for the 'share up to' picker."""
    messages = {m.id: m for m in chat_selectors.conversation_messages(conversation=conversation)}
    branch = chat_selectors.branch_to(conversation.current_leaf_id, messages)
    choices = []
    for index, message in enumerate(branch, start=1):
        who = "You" if message.role == "user" else (message.model_key or "Assistant")
        text = " ".join(message.content.split())
        if len(text) > PREVIEW_CHARS:
            text = text[: PREVIEW_CHARS - 1] + "…"
        choices.append((str(message.id), f"{index}. {who}: {text}"))
    return choices


@require_http_methods(["GET", "POST"])
def conversation_share(request, conversation_id):
    """GET: the share and export page of one of the user's conversations; POST makes a link."""
    conversation = chat_selectors.conversation_for(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("No such conversation.")
    error = None
    if request.method == "POST":
        try:
            share = services.create_share(
                owner=request.user,
                conversation=conversation,
                message_id=request.POST.get("message_id") or None,
                usernames=_split_names(request.POST.get("users")),
                group_names=_split_names(request.POST.get("groups")),
            )
        except services.ShareRefused as exc:
            error = str(exc)
        else:
            flash.success(request, "Share link created.")
            return redirect(reverse("sharing:conversation", args=[conversation.pk]) + f"#share-{share.pk}")
    shares = [s for s in selectors.shares_of(owner=request.user) if s.conversation_id == conversation.pk]
    return render(
        request,
        "sharing/conversation.html",
        {
            "conversation": conversation,
            "choices": _branch_choices(conversation),
            "shares": shares,
            "error": error,
            "form": request.POST if error else {},
        },
        status=400 if error else 200,
    )


@require_GET
def share_list(request):
    """Every share link the user made, with its audience and a revoke button."""
    return render(request, "sharing/list.html", {"shares": selectors.shares_of(owner=request.user)})


@require_POST
def revoke(request, share_id):
    share = selectors.owned_share(owner=request.user, share_id=share_id)
    if share is None:
        raise Http404(NOT_FOUND)
    services.revoke_share(share=share)
    flash.success(request, f"The link to “{share.title}” no longer works.")
    return redirect("sharing:list")


def _viewer_share(request, token):
    share = selectors.share_for_viewer(token=token, user=request.user)
    if share is None:
        raise Http404(NOT_FOUND)
    return share


def describe_image(share, image):
    """Like apps.media's ``describe``, with the share-scoped addresses."""
    url = reverse("sharing:image", args=[share.token, image.pk])
    return {
        "id": str(image.pk),
        "url": url,
        "thumbnail_url": reverse("sharing:thumbnail", args=[share.token, image.pk]),
        "download_url": url + "?download=1",
        "name": image.original_name,
        "width": image.width,
        "height": image.height,
        "content_type": image.content_type,
        "kind": image.kind,
        "revised_prompt": image.revised_prompt or None,
    }


@require_GET
def view_share(request, token):
    """The read-only page: markdown rendered in the browser by the chat's own sanitising module."""
    share = _viewer_share(request, token)
    # Not "messages": that name is the flash messages' in every template.
    shared_messages = [
        {
            "role": m.role,
            "content": m.content,
            "reasoning": m.reasoning,
            "model_key": m.model_key,
            "created": m.created.isoformat(),
            "attachments": [describe_image(share, image) for image in m.images.all()],
        }
        for m in share.messages.prefetch_related("images")
    ]
    return render(
        request,
        "sharing/view.html",
        {"share": share, "shared_messages": shared_messages, "is_owner": share.owner_id == request.user.pk},
    )


def _share_image(request, token, image_id):
    share = _viewer_share(request, token)
    image = SharedImage.objects.filter(share=share, pk=image_id).first()
    if image is None:
        raise Http404("no such image")
    return image


@require_GET
def image(request, token, image_id):
    found = _share_image(request, token, image_id)
    return _revocable(serve_stored(request, found, found.path))


@require_GET
def thumbnail(request, token, image_id):
    found = _share_image(request, token, image_id)
    return _revocable(serve_stored(request, found, found.variant_path("thumb")))


def _revocable(response):
    # Asked again each time, so a revoked link's pictures stop showing too.
    response["Cache-Control"] = "private, no-cache"
    return response


@require_POST
def continue_copy(request, token):
    """Make the viewer a conversation of their own from the snapshot, and open it."""
    share = _viewer_share(request, token)
    models = get_registry().for_user(request.user)
    model = models.get(share.model_key) if share.model_key else None
    if model is None or model.type not in ("chat", "completion"):
        chat_models = models.chat_models()
        model = chat_models[0] if chat_models else None
    if model is None:
        flash.error(request, "No model is available to you, so the copy could not be continued.")
        return redirect("sharing:view", token=share.token)
    conversation = services.continue_share(share=share, user=request.user, model_key=model.key)
    return redirect("chat:conversation", conversation_id=conversation.pk)
