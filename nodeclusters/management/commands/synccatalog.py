"""`manage.py synccatalog [provider ...]`: refresh regions, zones and node types from the providers' APIs."""

from django.core.management.base import BaseCommand, CommandError

from nodeclusters.exceptions import InvalidRequest
from nodeclusters.services.catalog_sync import catalog_sync


class Command(BaseCommand):
    help = (
        "Sync the catalog from each provider's API with the operator's credentials: new entries are added, entries "
        "no longer listed are marked unavailable (never deleted), Tutum's 2015 names stay aliases of today's sizes."
    )

    def add_arguments(self, parser):
        parser.add_argument("providers", nargs="*", help="provider names (default: every provider in the catalog)")

    def handle(self, *args, **options):
        try:
            results = catalog_sync(options["providers"] or None)
        except InvalidRequest as error:
            raise CommandError(str(error.detail)) from None
        for result in results:
            self.stdout.write(str(result))
        failed = [result.provider for result in results if result.error]
        if failed and len(failed) == len(results):
            raise CommandError(f"No provider could be synced ({', '.join(failed)}).")
