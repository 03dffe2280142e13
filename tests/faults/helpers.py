"""Shared steps of the fault tests: an HTTP client for the API under test, waiting for clusters, counting instances."""

import requests

from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Node, NodeCluster
from providers.models import SimulatedInstance
from tests import factories
from tests.support.engine import wait_until

SIMULATED = {"SIMULATE_PROVIDERS": "1", "SIMULATED_BOOT_SECONDS": "0.5"}
DO_CLUSTER = {"region": "/api/v1/region/digitalocean/lon1/", "node_type": "/api/v1/nodetype/digitalocean/1gb/"}
AWS_CLUSTER = {"region": "/api/v1/region/aws/us-east-1/", "node_type": "/api/v1/nodetype/aws/t2.micro/"}
SETTLED = {NodeClusterState.DEPLOYED, NodeClusterState.EMPTY_CLUSTER, NodeClusterState.TERMINATED}


class Api:
    """A Tutum API client over real HTTP (requests), like a curl script or an SDK."""

    def __init__(self, base_url: str, user) -> None:
        self.base = base_url
        self.session = requests.Session()
        # Up to 50 threads share this client in the burst test.
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
        self.session.headers["Authorization"] = f"ApiKey {user.username}:{factories.make_api_key(user)}"

    def call(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return self.session.request(method, self.base + path, json=body, timeout=30)

    def create_cluster(self, name: str, target: int, where: dict = DO_CLUSTER, deploy: bool = True) -> str:
        response = self.call("POST", "/api/v1/nodecluster/", {"name": name, "target_num_nodes": target, **where})
        assert response.status_code == 201, response.text
        uuid = response.json()["uuid"]
        if deploy:
            assert self.call("POST", f"/api/v1/nodecluster/{uuid}/deploy/").status_code == 202
        return uuid


def wait_settled(uuids, engine, timeout=120):
    """Every cluster settled (Deployed, Empty cluster or Terminated) with no node in transit."""

    def settled():
        clusters = list(NodeCluster.objects.filter(uuid__in=uuids))
        in_transit = Node.objects.filter(
            node_cluster_id__in=uuids, state__in=[NodeState.DEPLOYING, NodeState.TERMINATING, NodeState.UPGRADING]
        ).exists()
        return clusters if all(c.state in SETTLED for c in clusters) and not in_transit else None

    return wait_until(settled, timeout=timeout, what=f"{len(uuids)} cluster(s) to settle", engine=engine)


def live_simulated(cluster_uuid) -> list[str]:
    return sorted(
        SimulatedInstance.objects.filter(cluster_uuid=str(cluster_uuid), terminated_at__isnull=True).values_list(
            "instance_id", flat=True
        )
    )


def deployed_instance_ids(cluster_uuid) -> list[str]:
    return sorted(
        Node.objects.filter(node_cluster_id=cluster_uuid, state=NodeState.DEPLOYED).values_list(
            "instance_id", flat=True
        )
    )
