"""The catalog rows a node step reads come from a per-process copy: new rows are read at once, changed ones after a
sync in the process or within CATALOG_ROWS_SECONDS, and a step never queries the catalog per node."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodeclusters import node_steps
from nodeclusters.catalog_rows import catalog_rows_forget, with_catalog_rows
from nodeclusters.choices import NodeState
from nodeclusters.models import NodeType, Region
from providers.models import SimulatedInstance
from tests import factories

from .conftest import converge

pytestmark = pytest.mark.django_db


def test_a_node_type_added_after_the_rows_were_read_is_found_at_once(user, settings):
    settings.CATALOG_ROWS_SECONDS = 3600
    cluster = factories.make_cluster(user)
    with_catalog_rows(factories.make_node(cluster))  # the rows are read now
    region = Region.objects.get(provider__name="digitalocean", name="lon1")
    new_type = NodeType.objects.create(provider=region.provider, name="s-new", cpu=3, memory=3072)
    new_type.regions.add(region)

    node = with_catalog_rows(factories.make_node(cluster, node_type=new_type))

    assert (node.node_type.name, node.node_type.cpu, node.region.provider.name) == ("s-new", 3, "digitalocean")


def test_an_alias_moved_by_a_sync_creates_the_new_size(user, settings):
    settings.SIMULATED_BOOT_SECONDS = 0
    settings.CATALOG_ROWS_SECONDS = 3600
    other = factories.make_cluster(user, name="other", type_name="1gb")
    with_catalog_rows(factories.make_node(other))  # the rows are read with the alias' old target
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1, type_name="1gb"))
    alias = NodeType.objects.get(provider__name="digitalocean", name="1gb")
    alias.alias_of = NodeType.objects.get(provider__name="digitalocean", name="s-2vcpu-2gb")
    alias.save(update_fields=["alias_of"])
    catalog_rows_forget()  # what the catalog sync does in its process

    node = converge(cluster.uuid).nodes.get(state=NodeState.DEPLOYED)

    assert SimulatedInstance.objects.get(instance_id=node.instance_id).node_type == "s-2vcpu-2gb"


def test_a_deploy_step_reads_no_catalog_table(user, settings):
    settings.SIMULATED_BOOT_SECONDS = 3600
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2, type_name="1gb"))
    first, second = (
        factories.make_node(cluster, state=NodeState.DEPLOYING),
        factories.make_node(cluster, state=NodeState.DEPLOYING),
    )
    node_steps.node_deploy_step(first.uuid)  # reads the rows once for the process

    with CaptureQueriesContext(connection) as queries:
        node_steps.node_deploy_step(second.uuid)

    # (The account lookup joins the provider by name and the hand-over to the poll updates the region's row.)
    catalog = re.compile(r'"nodeclusters_(nodetype|availabilityzone)"|(FROM|JOIN) "nodeclusters_region"')
    assert not [query["sql"] for query in queries.captured_queries if catalog.search(query["sql"])]
    assert SimulatedInstance.objects.filter(node_uuid=second.uuid, node_type="s-1vcpu-1gb").exists()
