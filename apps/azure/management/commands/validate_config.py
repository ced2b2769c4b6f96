from django.core.management.base import BaseCommand, CommandError

from apps.azure.config import ConfigFileError, parse_config, read_config_file


class Command(BaseCommand):
    help = "Validate a model-group YAML: print every error and warning; exit 1 if there is an error."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file, **options):
        try:
            text = read_config_file(file)
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from None
        result = parse_config(text)
        for problem in result.errors:
            self.stdout.write(f"error: {problem}")
        for problem in result.warnings:
            self.stdout.write(f"warning: {problem}")
        if result.errors:
            raise CommandError(f"{file}: {len(result.errors)} error(s)", returncode=1)
        models = len(result.config.models())
        self.stdout.write(f"{file}: OK ({len(result.config.groups)} groups, {models} models)")
