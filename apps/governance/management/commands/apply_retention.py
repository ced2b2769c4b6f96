"""``manage.py apply_retention [--dry-run]``: delete conversations past their retention policy.

Meant for a scheduler (cron, a systemd timer, a Kubernetes CronJob; README), once a day or so.
Also sweeps temporary chats whose sockets a crashed process left (apps.chat.temporary).
"""

from django.core.management.base import BaseCommand

from apps.audit.context import acting
from apps.governance.retention import apply_retention


class Command(BaseCommand):
    help = "Delete conversations and their images older than the retention policy (see README)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")

    def handle(self, *args, dry_run=False, **options):
        from apps.chat.temporary import sweep_orphans

        with acting(name="manage.py apply_retention"):
            result = apply_retention(dry_run=dry_run)
            swept = 0 if dry_run else sweep_orphans()
        self.stdout.write(result.describe().capitalize() + ".")
        if swept:
            self.stdout.write(f"Swept {swept} temporary chat(s) left by a stopped process.")
