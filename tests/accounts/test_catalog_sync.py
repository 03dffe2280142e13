"""The live catalog: synccatalog (new entries, vanished ones unavailable, aliases intact) and legacy aliases."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from nodeclusters.catalog import LEGACY_ALIASES
from nodeclusters.models import NodeType, Region
from providers.base import TransientProviderError
from providers.models import SimulatedInstance
from providers.simulated import SimulatedDriver
from tests import factories
from tests.reconciler.conftest import converge

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def simulated_cloud(settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SHARED_PROVIDER_ACCOUNTS = ["*"]
    settings.SIMULATED_BOOT_SECONDS = 0


def sync(*providers) -> str:
    out = StringIO()
    call_command("synccatalog", *providers, stdout=out)
    return out.getvalue()


def test_seeded_legacy_names_are_aliases_of_todays_types(catalog):
    for provider_name, aliases in LEGACY_ALIASES.items():
        for legacy, current in aliases.items():
            assert factories.node_type(provider_name, legacy).alias_of.name == current


def test_a_legacy_cluster_is_created_as_todays_size(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, type_name="1gb", target_num_nodes=1))
    converge(cluster.uuid)
    assert list(SimulatedInstance.objects.values_list("node_type", flat=True)) == ["s-1vcpu-1gb"]


def test_sync_adds_new_entries_marks_vanished_ones_unavailable_and_keeps_aliases(client, catalog):
    old_region = Region.objects.get(provider__name="digitalocean", name="ams1")
    assert not NodeType.objects.filter(provider__name="digitalocean", name="s-1vcpu-2gb").exists()

    output = sync("digitalocean")

    assert "digitalocean:" in output and "node type s-1vcpu-2gb" in output
    new = NodeType.objects.get(provider__name="digitalocean", name="s-1vcpu-2gb")
    assert (new.cpu, new.memory, str(new.price_monthly), new.available) == (1, 2048, "12.00", True)
    assert new.synced_at is not None
    assert Region.objects.filter(provider__name="digitalocean", name="atl1", available=True).exists()
    old_region.refresh_from_db()
    assert old_region.available is False  # never deleted: clusters refer to it
    legacy = factories.node_type("digitalocean", "1gb")
    target = legacy.alias_of
    assert target.name == "s-1vcpu-1gb" and legacy.available and target.synced_at is not None
    assert set(legacy.regions.all()) == set(target.regions.all())
    assert not legacy.regions.filter(name="ams1").exists()

    body = client.get("/api/v1/nodetype/digitalocean/1gb/").json()
    assert body["alias_of"] == "/api/v1/nodetype/digitalocean/s-1vcpu-1gb/" and body["available"] is True
    detail = client.get("/api/v1/nodetype/digitalocean/s-1vcpu-1gb/").json()
    assert (detail["price_monthly"], detail["price_hourly"], detail["alias_of"]) == (6.0, 0.00893, None)


def test_sync_is_idempotent_and_loadcatalog_keeps_what_it_wrote(catalog):
    sync()
    counts = (NodeType.objects.count(), Region.objects.count(), NodeType.regions.through.objects.count())
    available = set(NodeType.objects.filter(available=True).values_list("provider__name", "name"))

    sync()
    call_command("loadcatalog", stdout=StringIO())

    assert (NodeType.objects.count(), Region.objects.count(), NodeType.regions.through.objects.count()) == counts
    assert set(NodeType.objects.filter(available=True).values_list("provider__name", "name")) == available
    assert factories.node_type("aws", "t2.micro").alias_of.name == "t3.micro"


def test_a_provider_that_cannot_be_read_keeps_its_catalog(catalog, monkeypatch):
    def unreachable(self):
        raise TransientProviderError("simulated: regions endpoint timed out")

    monkeypatch.setattr(SimulatedDriver, "fetch_catalog", unreachable)
    before = list(NodeType.objects.values_list("name", "available").order_by("pk"))

    with pytest.raises(CommandError):
        sync("digitalocean")

    assert list(NodeType.objects.values_list("name", "available").order_by("pk")) == before


def test_unknown_provider_names_are_refused(catalog):
    with pytest.raises(CommandError, match="softlayer"):
        sync("softlayer")


def test_the_admin_action_syncs_the_selected_providers(admin_client, catalog):
    from nodeclusters.models import Provider

    response = admin_client.post(
        "/admin/nodeclusters/provider/",
        {"action": "sync_catalog_selected", "_selected_action": [Provider.objects.get(name="local").pk]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    assert shown == [("success", "local: 1 regions, 3 node types")]
    assert NodeType.objects.filter(provider__name="local", synced_at__isnull=False).exists()
    assert not NodeType.objects.filter(provider__name="digitalocean", synced_at__isnull=False).exists()
