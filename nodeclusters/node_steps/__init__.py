"""The engine's node steps: the only code that calls provider drivers, always outside database transactions.

Each step takes the node's lease first (an atomic conditional UPDATE), so at most one task talks to the provider
about a node at a time; a step killed half-way is picked up again once its lease expires. A lease can expire under
a step that is still waiting for the provider, so whatever a step writes after a provider call is fenced: it
applies only while the node's `lease_token` is still the step's own, and a step that finds its lease taken writes
nothing of its outcome but hands what it created over to the engine (`stray_instance_ids`), which adopts or
destroys it. Steps that hold no lease (the region poll, health probes) write only if the node still has the
instance and state they observed. Booting instances are watched by one poll per provider and region (`poll`), not
per node or per cluster. Steps return what to do next and leave scheduling (polls, retries with backoff) to the
Celery tasks that call them.
"""

from .common import Outcome, Step, node_log, nodes_log
from .deploy import node_deploy_step, node_give_up, node_strays_step, nodes_deploy_step
from .health import node_health_step, probe_delay
from .poll import region_poll_step, schedule_region_poll
from .terminate import node_terminate_step
from .upgrade import node_upgrade_step

__all__ = [
    "Outcome",
    "Step",
    "node_deploy_step",
    "node_give_up",
    "node_health_step",
    "node_log",
    "node_strays_step",
    "node_terminate_step",
    "node_upgrade_step",
    "nodes_deploy_step",
    "nodes_log",
    "probe_delay",
    "region_poll_step",
    "schedule_region_poll",
]
