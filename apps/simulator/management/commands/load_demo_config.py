"""``python manage.py load_demo_config``: activate apps/simulator/demo.yaml for `make run`.

Does nothing when CONFIG_PATH is set or a config version other than a demo is active, so a
team's own configuration is never replaced by the demo; an earlier release's demo is updated.
Needs LAPIS_DEMO_ENDPOINT and LAPIS_SIM_KEY in the environment (bin/serve exports them).
"""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

DEMO_PATH = Path(__file__).resolve().parents[2] / "demo.yaml"
# The first line of demo.yaml, in every release: how an earlier demo config is recognised.
DEMO_MARK = "# The demo model config that `make run` activates"


class Command(BaseCommand):
    help = "Activate the simulator demo model config when nothing else is configured."

    def handle(self, *args, **options):
        from apps.azure.models import ConfigVersion
        from apps.azure.services import load_and_activate

        if os.environ.get("CONFIG_PATH"):
            self.stdout.write("CONFIG_PATH is set: the demo config is not loaded.")
            return
        text = DEMO_PATH.read_text()
        active = ConfigVersion.objects.filter(is_active=True).first()
        if active is not None and active.text == text:
            self.stdout.write("The demo config is active.")
            return
        # An older demo (an earlier release's demo.yaml) is replaced; a team's own config never is.
        if active is not None and not active.text.startswith(DEMO_MARK):
            self.stdout.write("A model config is already active: the demo config is not loaded.")
            return
        result = load_and_activate(text=text, source="command")
        if result.errors:
            raise CommandError(
                "the demo config could not be loaded:\n"
                + "\n".join(str(problem) for problem in result.errors)
            )
        self.stdout.write("Demo config activated: models served by the built-in Azure simulator.")
