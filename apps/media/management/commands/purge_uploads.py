"""``python manage.py purge_uploads [--hours 24]``: delete uploads never attached to a message."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from apps.media.images import purge_unattached_uploads


class Command(BaseCommand):
    help = "Delete uploaded images that were never sent with a message (and their files)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=24.0, help="older than this (default 24)")

    def handle(self, *args, hours, **options):
        count = purge_unattached_uploads(older_than=timedelta(hours=hours))
        self.stdout.write(f"deleted {count} unattached upload(s) older than {hours:g} hours")
