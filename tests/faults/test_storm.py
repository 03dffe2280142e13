"""A write storm on one cluster: 16 clients scale it, cancel and retry its actions, upgrade Docker and read it.

Every answer is below 500 (a deadlock between two writers is retried inside the service, not answered with a 503)
and, once the clients stop, the cluster converges on the target the last accepted write set.
"""

import random
import threading
import time
from collections import Counter

import pytest
from django.db.models import Q

from nodeclusters.choices import ACTION_OPEN_STATES, NodeClusterState
from nodeclusters.models import Action, ActionLogLine

from .helpers import SIMULATED, Api, deployed_instance_ids, live_simulated, wait_settled

pytestmark = pytest.mark.integration

CLIENTS = 16
SECONDS = 15

# The log lines a target-setting write leaves on an action, inside the cluster's row lock: their ids are drawn in
# the order the writes took the lock, so the highest one is the last accepted write.
_TARGET_LINES = (
    Q(message__startswith="Target number of nodes changed")
    | Q(message__startswith="Retried")
    | Q(message__startswith="Cancel requested")
)


def last_accepted_target(cluster_uuid) -> int:
    """The target the last accepted scale, cancel or retry left the cluster with, read from the audit trail."""
    line = (
        ActionLogLine.objects.filter(_TARGET_LINES, action__node_cluster_id=cluster_uuid)
        .select_related("action")
        .order_by("-id")
        .first()
    )
    if line.message.startswith("Target number of nodes changed"):
        return int(line.message.split(" to ")[1].split(";")[0])
    if line.message.startswith("Retried"):
        return line.action.target_num_nodes
    return int(line.message.rsplit("keeping ", 1)[1].split(" ")[0])  # "Cancel requested (...); keeping N node(s)"


def test_a_storm_of_writes_on_one_cluster_answers_no_5xx_and_converges_on_the_last_accepted_target(user, start_engine):
    engine = start_engine(env={**SIMULATED, "API_THROTTLE_RATE": ""})
    base = engine.start_web()
    uuid = Api(base, user).create_cluster("storm", 2)
    wait_settled([uuid], engine)
    cluster_path = f"/api/v1/nodecluster/{uuid}/"
    clients = [Api(base, user) for _ in range(CLIENTS)]
    size_actions: list[str] = []
    canceled: list[str] = []
    answers: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def record(kind: str, response) -> None:
        with lock:
            answers.append((kind, response.status_code, response.text[:300]))
            if response.status_code == 202 and kind in ("scale", "retry"):  # actions that set the size
                size_actions.append(response.headers["X-Tutum-Action-URI"])
            if response.status_code == 202 and kind == "cancel":
                canceled.append(response.headers["X-Tutum-Action-URI"])

    def storm(api: Api, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            # Gusts of scales and cancels (two seconds) alternate with lulls (three) in which the cluster can settle,
            # so Docker upgrades and retries of finished actions become allowed: all of them race each other.
            gust = (deadline - time.monotonic()) % 5 >= 3
            roll = rng.random()
            if gust and roll < 0.2:
                response = api.call("PATCH", cluster_path, {"target_num_nodes": rng.randint(0, 4)})
                record("scale", response)
                if response.status_code == 202 and rng.random() < 0.3:  # changed one's mind: cancel it at once
                    record("cancel", api.call("POST", f"{response.headers['X-Tutum-Action-URI']}cancel/"))
            elif gust and roll < 0.35 and size_actions:
                record("cancel", api.call("POST", f"{size_actions[-1]}cancel/"))  # the newest: likely still open
            elif roll < (0.5 if gust else 0.2) and size_actions:
                # The newest size action once it has ended, or one that ended by a cancel (one superseded while it
                # was open is refused with a 409).
                with lock:
                    action_uri = rng.choice([size_actions[-1], *canceled[-2:]])
                record("retry", api.call("POST", f"{action_uri}retry/"))
            elif not gust and roll < 0.35:
                record("docker-upgrade", api.call("POST", f"{cluster_path}docker-upgrade/"))
            elif roll < 0.8:
                record("read", api.call("GET", f"/api/v1/action/?object={cluster_path}&limit=5"))
            else:
                record("read", api.call("GET", cluster_path if roll < 0.9 else "/api/v1/node/?limit=10"))

    threads = [threading.Thread(target=storm, args=(client, seed)) for seed, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 60)

    failures = [(kind, status, text) for kind, status, text in answers if status >= 500]
    statuses = Counter((kind, status) for kind, status, _ in answers)
    assert not failures, f"{len(failures)} of {len(answers)} answers >= 500: {failures[:5]}"
    assert len(answers) > 300, statuses
    for kind in ("scale", "cancel", "retry"):  # the storm did mix the writers that used to deadlock
        assert statuses[(kind, 202)] > 0, statuses

    expected = last_accepted_target(uuid)
    (cluster,) = wait_settled([uuid], engine, timeout=150)
    assert cluster.target_num_nodes == expected
    assert cluster.state == (NodeClusterState.DEPLOYED if expected else NodeClusterState.EMPTY_CLUSTER)
    assert len(deployed_instance_ids(uuid)) == expected
    assert live_simulated(uuid) == deployed_instance_ids(uuid)  # no instance leaked or twinned
    assert not Action.objects.filter(node_cluster_id=uuid, state__in=ACTION_OPEN_STATES).exists()
