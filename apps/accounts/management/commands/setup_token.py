from django.core.management.base import BaseCommand

from apps.accounts.first_run import setup_needed, setup_token


class Command(BaseCommand):
    help = "Print the one-time setup token while no user exists (for make run)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="Base URL to print with the token.")

    def handle(self, *args, url, **options):
        if setup_needed():
            where = f"{url.rstrip('/')}/setup/" if url else "/setup/"
            self.stdout.write(f"First run: open {where} and enter the setup token {setup_token()}")

