"""A shared image's files go with its row, once the transaction commits."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.sharing.models import SharedImage


@receiver(post_delete, sender=SharedImage, dispatch_uid="sharing_delete_files")
def delete_shared_image_files(sender, instance, **kwargs):
    from apps.media.images import delete_files

    path = instance.path
    transaction.on_commit(lambda: delete_files(path), using=kwargs.get("using"))
