"""``python manage.py azure_simulator [--host H] [--port P] [--config FILE]``: serve the simulator."""

from django.core.management.base import BaseCommand, CommandError

from apps.simulator.serve import add_arguments, serve


class Command(BaseCommand):
    help = "Serve the Azure OpenAI simulator (and its identity endpoint) with uvicorn."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        self.stdout.write(
            f"Azure OpenAI simulator on http://{options['host']}:{options['port']} "
            f"(identity endpoint /msi/token)"
        )
        try:
            serve(host=options["host"], port=options["port"], config=options["config"],
                  log_level=options["log_level"], api_key=options["api_key"],
                  ttft_ms=options["ttft_ms"], chunk_ms=options["chunk_ms"],
                  path_prefixes=options["path_prefixes"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"simulator: {exc}") from exc
