"""The benchmarks' yardstick stays honest: the one-query baseline answers exactly what the API answers."""

import pytest
from django.test import Client

from nodeclusters.choices import NodeClusterState, NodeState
from tests import factories
from tests.api.helpers import set_cluster_state

pytestmark = [pytest.mark.integration, pytest.mark.urls("bench.urls")]


@pytest.fixture
def reader(postgres, catalog):
    user = factories.make_user("bench-reader")
    for index in range(3):
        cluster = factories.deploy(factories.make_cluster(user, name=f"c{index}", target_num_nodes=2, tags=["web"]))
        set_cluster_state(cluster, NodeClusterState.DEPLOYED)
        for state in (NodeState.DEPLOYED, NodeState.DEPLOYING):
            factories.make_node(cluster, state=state)
    factories.make_cluster(user, name="bare")
    return user


def test_the_baseline_list_and_detail_are_the_apis_bodies(reader):
    key = factories.make_api_key(reader)
    headers = {"HTTP_AUTHORIZATION": f"ApiKey {reader.username}:{key}"}
    client = Client()

    real = client.get("/api/v1/nodecluster/?limit=3", **headers).json()
    baseline = client.get("/bench/baseline/nodecluster/?limit=3", **headers).json()

    assert baseline == real
    assert real["meta"]["total_count"] == 4
    assert any(item["nodes"] and item["actions"] for item in real["objects"])
    for item in real["objects"]:
        path = item["resource_uri"].replace("/api/v1/", "/bench/baseline/")
        assert client.get(path, **headers).json() == client.get(item["resource_uri"], **headers).json()
