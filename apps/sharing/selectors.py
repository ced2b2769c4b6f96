"""Reads of share links: by token for viewers (audience checked), by owner for the owner."""

from apps.sharing.models import Share


def share_for_viewer(*, token, user):
    """The live share behind ``token`` if ``user`` may open it, else None (a revoked share, an
    unknown token and someone outside the audience all look the same)."""
    if not token or len(token) > 64:
        return None
    share = Share.objects.prefetch_related("users", "groups").filter(token=token).first()
    if share is None or not share.visible_to(user):
        return None
    return share


def shares_of(*, owner):
    """The owner's shares, newest first, with their audience."""
    return list(
        Share.objects.filter(owner=owner).select_related("conversation").prefetch_related("users", "groups")
    )


def owned_share(*, owner, share_id):
    return Share.objects.filter(owner=owner, pk=share_id).first()
