"""Seed the catalog (DigitalOcean, AWS, local); idempotent, so re-running it changes nothing."""

from django.db import migrations

from nodeclusters.catalog import catalog_load


def load(apps, schema_editor):
    catalog_load(
        apps.get_model("nodeclusters", "Provider"),
        apps.get_model("nodeclusters", "Region"),
        apps.get_model("nodeclusters", "AvailabilityZone"),
        apps.get_model("nodeclusters", "NodeType"),
    )


class Migration(migrations.Migration):
    dependencies = [("nodeclusters", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
