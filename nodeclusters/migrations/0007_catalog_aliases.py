"""Today's node types in the seeded catalog, and Tutum's 2015 names made aliases of them (offline, idempotent)."""

from django.db import migrations

from nodeclusters.catalog import catalog_load


def load(apps, schema_editor):
    catalog_load(
        apps.get_model("nodeclusters", "Provider"),
        apps.get_model("nodeclusters", "Region"),
        apps.get_model("nodeclusters", "AvailabilityZone"),
        apps.get_model("nodeclusters", "NodeType"),
    )


def unalias(apps, schema_editor):
    """Going back leaves today's types in place (clusters may use them) and only forgets the aliases."""
    apps.get_model("nodeclusters", "NodeType").objects.update(alias_of=None)


class Migration(migrations.Migration):
    dependencies = [("nodeclusters", "0006_control_accounts_webhooks")]

    operations = [migrations.RunPython(load, unalias)]
