from django.core.management.base import BaseCommand, CommandError

from apps.chat import search


class Command(BaseCommand):
    help = (
        "Refill the full-text search index from every conversation and message (after a restore "
        "or a raw bulk load); on PostgreSQL it also applies SEARCH_LANGUAGE (or --language)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--language", help="PostgreSQL text-search configuration to use")

    def handle(self, *args, language=None, **options):
        try:
            search.rebuild_index(language=language)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        lang = search.index_language()
        self.stdout.write("Search index rebuilt" + (f" ({lang})." if lang else "."))
