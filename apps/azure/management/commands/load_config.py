from django.core.management.base import BaseCommand, CommandError

from apps.audit.context import acting
from apps.azure.config import ConfigFileError, read_config_file
from apps.azure.services import activate_version, load_version


class Command(BaseCommand):
    help = "Store a model-group YAML as a new version (source: command); --activate makes it active."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--activate", action="store_true")

    def handle(self, *args, file, activate, **options):
        try:
            text = read_config_file(file)
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from None
        with acting(name="manage.py load_config"):  # the audit log's actor
            version, result = load_version(text=text, source="command")
        for problem in result.errors:
            self.stdout.write(f"error: {problem}")
        for problem in result.warnings:
            self.stdout.write(f"warning: {problem}")
        if version is None:
            raise CommandError(f"{file}: {len(result.errors)} error(s); nothing stored", returncode=1)
        if activate:
            with acting(name="manage.py load_config"):
                activate_version(version=version)
            self.stdout.write(f"stored and activated config version {version.pk}")
        else:
            self.stdout.write(f"stored config version {version.pk} (not active)")
