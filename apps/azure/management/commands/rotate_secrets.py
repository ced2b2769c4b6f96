"""Re-encrypt every stored key under the first of LAPIS_SECRETS_KEYS (after putting a new key first)."""

from django.core.management.base import BaseCommand, CommandError

from apps.azure.secrets import SecretUnreadable, rotate


class Command(BaseCommand):
    help = "Re-encrypt the stored model-group keys with the first key of LAPIS_SECRETS_KEYS."

    def handle(self, *args, **options):
        try:
            count = rotate()
        except (SecretUnreadable, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{count} stored key(s) re-encrypted; the old key may now be removed.")
