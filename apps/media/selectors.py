"""Reading stored images; every lookup is scoped to an owner."""

from apps.media.models import Attachment


def get_owned_attachment(*, owner, attachment_id):
    """The owner's Attachment with that id, or None (someone else's id looks like a missing one)."""
    return Attachment.objects.filter(pk=attachment_id, owner=owner).first()


def attachments_by_message(*, owner, message_ids):
    """``{message_id: [Attachment, ...]}`` in upload order, for the owner's messages only."""
    found = {}
    for attachment in Attachment.objects.filter(owner=owner, message_id__in=list(message_ids)):
        found.setdefault(attachment.message_id, []).append(attachment)
    return found
