"""Files follow their rows: when an Attachment row goes (its conversation, message or owner was
deleted, or itself), its files go once the transaction commits (a rollback keeps both)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.media.models import Attachment


@receiver(post_delete, sender=Attachment, dispatch_uid="media_delete_files")
def delete_attachment_files(sender, instance, **kwargs):
    from apps.media.images import delete_files

    path = instance.path
    transaction.on_commit(lambda: delete_files(path), using=kwargs.get("using"))
