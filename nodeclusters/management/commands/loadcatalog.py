"""`manage.py loadcatalog`: create or refresh the seeded catalog (idempotent; migrations run it too)."""

from django.core.management.base import BaseCommand

from nodeclusters.catalog import catalog_load
from nodeclusters.models import AvailabilityZone, NodeType, Provider, Region


class Command(BaseCommand):
    help = "Load the seeded provider/region/zone/node type catalog; running it twice changes nothing."

    def handle(self, *args, **options):
        catalog_load(Provider, Region, AvailabilityZone, NodeType)
        self.stdout.write(
            f"Catalog: {Provider.objects.count()} providers, {Region.objects.count()} regions, "
            f"{AvailabilityZone.objects.count()} zones, {NodeType.objects.count()} node types"
        )
