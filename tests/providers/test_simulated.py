"""The simulated cloud: time-driven boots, repeatable failure injection, no twins, Docker upgrades."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

import providers
from providers.base import InstanceState, PermanentProviderError, TransientProviderError
from providers.models import SimulatedInstance
from providers.simulated import SimulatedDriver
from tests.providers.conftest import OWNER, SIMULATED_REGION, make_spec

pytestmark = pytest.mark.django_db


def _driver(**options) -> SimulatedDriver:
    """A simulated driver for the "local" provider with the given boot time, failure rate and seed."""
    return SimulatedDriver(**{"owner_tag": OWNER, "provider_name": "local", **options})


def _spec(**overrides):
    return make_spec(region=SIMULATED_REGION, node_type="small", **overrides)


def test_instant_boot_is_running_at_once():
    driver = _driver(boot_seconds=0)

    instance = driver.create_node(_spec())

    assert instance.state == InstanceState.RUNNING
    assert instance.public_ip.startswith("198.1")
    assert driver.check_health(instance_id=instance.instance_id, region=SIMULATED_REGION)


def test_instance_is_pending_until_its_boot_time_has_passed():
    driver = _driver(boot_seconds=30)
    start = timezone.now()

    with mock.patch("django.utils.timezone.now", return_value=start):
        instance = driver.create_node(_spec())
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(seconds=29)):
        booting = driver.get_node(instance_id=instance.instance_id, region=SIMULATED_REGION)
        healthy_while_booting = driver.check_health(instance_id=instance.instance_id, region=SIMULATED_REGION)
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(seconds=30)):
        booted = driver.get_node(instance_id=instance.instance_id, region=SIMULATED_REGION)
        healthy_after_boot = driver.check_health(instance_id=instance.instance_id, region=SIMULATED_REGION)

    assert instance.state == InstanceState.PENDING
    assert booting.state == InstanceState.PENDING
    assert healthy_while_booting is False
    assert booted.state == InstanceState.RUNNING
    assert healthy_after_boot is True
    row = SimulatedInstance.objects.get(instance_id=instance.instance_id)
    assert row.ready_at - row.created_at == timedelta(seconds=30)


def test_destroy_terminates_at_once_and_keeps_the_row():
    driver = _driver(boot_seconds=3600)
    instance = driver.create_node(_spec())

    driver.destroy_node(instance_id=instance.instance_id, region=SIMULATED_REGION)

    gone = driver.get_node(instance_id=instance.instance_id, region=SIMULATED_REGION)
    assert gone.state == InstanceState.TERMINATED
    assert gone.public_ip is None
    assert SimulatedInstance.objects.get(instance_id=instance.instance_id).terminated_at is not None


def test_no_twin_for_one_node_uuid():
    driver = _driver(boot_seconds=0)
    spec = _spec()

    first = driver.create_node(spec)
    second = driver.create_node(spec)

    assert second.instance_id == first.instance_id
    assert SimulatedInstance.objects.filter(node_uuid=spec.node_uuid).count() == 1


def test_a_create_refused_as_a_twin_whose_winner_is_gone_asks_for_a_retry():
    driver = _driver(boot_seconds=0)
    spec = _spec()
    driver.create_node(spec)

    # The insert hits the partial unique constraint, but the instance that won is terminated before the driver can
    # read it: nothing to answer with, so the caller must try again rather than get no instance at all.
    with mock.patch.object(SimulatedDriver, "_live_rows") as live_rows:
        live_rows.return_value.filter.return_value.first.return_value = None
        with pytest.raises(TransientProviderError, match="retry"):
            driver.create_node(spec)

    assert SimulatedInstance.objects.filter(node_uuid=spec.node_uuid).count() == 1


def test_same_node_uuid_on_another_provider_is_another_cloud():
    aws = SimulatedDriver(owner_tag=OWNER, provider_name="aws", boot_seconds=0)
    digitalocean = SimulatedDriver(owner_tag=OWNER, provider_name="digitalocean", boot_seconds=0)
    spec = _spec()

    on_aws = aws.create_node(spec)

    assert digitalocean.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION) is None
    assert digitalocean.get_node(instance_id=on_aws.instance_id, region=SIMULATED_REGION) is None
    assert digitalocean.list_nodes(region=SIMULATED_REGION) == []
    assert digitalocean.create_node(spec).instance_id != on_aws.instance_id


def test_failed_boot_raises_and_leaves_a_findable_half_made_instance():
    driver = _driver(boot_seconds=0, failure_rate=1.0, seed="replay-1")
    spec = _spec()

    with pytest.raises(PermanentProviderError, match=r"simulated: instance sim-[0-9a-f]{12} failed to boot"):
        driver.create_node(spec)

    leftover = driver.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION)
    assert leftover is not None
    assert leftover.state == InstanceState.STOPPED
    assert leftover.node_uuid == spec.node_uuid
    assert leftover.extra["failed"] is True
    assert leftover.instance_id in {item.instance_id for item in driver.list_nodes(region=SIMULATED_REGION)}
    assert driver.check_health(instance_id=leftover.instance_id, region=SIMULATED_REGION) is False
    # Creating again before cleaning up neither hides the failure nor makes a twin.
    with pytest.raises(PermanentProviderError, match="destroy it before creating the node again"):
        driver.create_node(spec)
    assert SimulatedInstance.objects.filter(node_uuid=spec.node_uuid).count() == 1


def test_cleaning_up_a_failed_instance_lets_the_node_be_created_again():
    driver = _driver(boot_seconds=0, failure_rate=1.0, seed="replay-1")
    spec = _spec()
    with pytest.raises(PermanentProviderError):
        driver.create_node(spec)
    leftover = driver.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION)

    driver.destroy_node(instance_id=leftover.instance_id, region=SIMULATED_REGION)
    driver.failure_rate = 0.0
    retried = driver.create_node(spec)

    assert retried.state == InstanceState.RUNNING
    assert driver.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION).instance_id == retried.instance_id


def _failures(driver: SimulatedDriver, node_uuids: list[str]) -> list[bool]:
    """Which of these nodes' first creates fail."""
    outcomes = []
    for node_uuid in node_uuids:
        try:
            driver.create_node(_spec(node_uuid=node_uuid))
        except PermanentProviderError:
            outcomes.append(True)
        else:
            outcomes.append(False)
    return outcomes


def test_seeded_failures_replay_exactly():
    node_uuids = [f"00000000-0000-4000-8000-{index:012d}" for index in range(40)]

    first_run = _failures(_driver(boot_seconds=0, failure_rate=0.5, seed=42), node_uuids)
    SimulatedInstance.objects.all().delete()
    second_run = _failures(_driver(boot_seconds=0, failure_rate=0.5, seed=42), node_uuids)
    SimulatedInstance.objects.all().delete()
    other_seed = _failures(_driver(boot_seconds=0, failure_rate=0.5, seed=43), node_uuids)

    assert first_run == second_run
    assert 5 < sum(first_run) < 35
    assert other_seed != first_run


def test_seeded_retry_of_a_failed_node_gets_a_fresh_draw():
    driver = _driver(boot_seconds=0, failure_rate=0.5, seed=7)
    spec = _spec(node_uuid="00000000-0000-4000-8000-000000000001")
    outcomes = []
    for _ in range(20):
        try:
            instance = driver.create_node(spec)
        except PermanentProviderError:
            outcomes.append("failed")
            leftover = driver.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION)
            driver.destroy_node(instance_id=leftover.instance_id, region=SIMULATED_REGION)
        else:
            outcomes.append("running")
            driver.destroy_node(instance_id=instance.instance_id, region=SIMULATED_REGION)

    # Seeded on (seed, node) alone, one node would fail (or succeed) forever.
    assert set(outcomes) == {"failed", "running"}


def test_failure_rate_zero_never_fails_and_one_always_fails():
    node_uuids = [f"00000000-0000-4000-8000-{index:012d}" for index in range(10)]

    assert _failures(_driver(boot_seconds=0, failure_rate=0.0), node_uuids) == [False] * 10
    SimulatedInstance.objects.all().delete()
    assert _failures(_driver(boot_seconds=0, failure_rate=1.0), node_uuids) == [True] * 10


@pytest.mark.parametrize("options", [{"failure_rate": 1.5}, {"failure_rate": -0.1}, {"boot_seconds": -1}])
def test_nonsense_settings_are_refused(options):
    with pytest.raises(PermanentProviderError):
        _driver(**options)


def test_empty_seed_means_unseeded():
    assert _driver(seed="").seed is None
    assert _driver(seed=0).seed == "0"


def test_docker_upgrade_moves_a_running_instance_to_the_latest_version():
    driver = _driver(boot_seconds=0)
    instance = driver.create_node(_spec())
    assert instance.extra["docker_version"] == SimulatedDriver.INITIAL_DOCKER_VERSION

    driver.upgrade_docker(instance_id=instance.instance_id, region=SIMULATED_REGION)
    driver.upgrade_docker(instance_id=instance.instance_id, region=SIMULATED_REGION)

    upgraded = driver.get_node(instance_id=instance.instance_id, region=SIMULATED_REGION)
    assert driver.supports_docker_upgrade is True
    assert upgraded.extra["docker_version"] == SimulatedDriver.LATEST_DOCKER_VERSION
    assert SimulatedInstance.objects.get(instance_id=instance.instance_id).docker_version == "1.9.1"


def test_docker_upgrade_of_a_booting_instance_is_transient():
    driver = _driver(boot_seconds=3600)
    instance = driver.create_node(_spec())

    with pytest.raises(TransientProviderError, match="still booting"):
        driver.upgrade_docker(instance_id=instance.instance_id, region=SIMULATED_REGION)


def test_docker_upgrade_of_a_failed_or_terminated_instance_is_permanent():
    driver = _driver(boot_seconds=0, failure_rate=1.0, seed="s")
    spec = _spec()
    with pytest.raises(PermanentProviderError):
        driver.create_node(spec)
    failed = driver.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION)

    with pytest.raises(PermanentProviderError, match="stopped"):
        driver.upgrade_docker(instance_id=failed.instance_id, region=SIMULATED_REGION)
    driver.destroy_node(instance_id=failed.instance_id, region=SIMULATED_REGION)
    with pytest.raises(PermanentProviderError, match="no live instance"):
        driver.upgrade_docker(instance_id=failed.instance_id, region=SIMULATED_REGION)


def test_instances_of_another_region_are_not_listed_or_found():
    driver = _driver(boot_seconds=0)
    spec = _spec()
    instance = driver.create_node(spec)

    assert driver.list_nodes(region="sim-2") == []
    assert driver.find_node(node_uuid=spec.node_uuid, region="sim-2") is None
    assert driver.get_node(instance_id=instance.instance_id, region="sim-2") is None


def test_providers_never_sleep():
    # State is derived from time; a sleeping driver would hold a worker thread hostage.
    package = Path(providers.__file__).parent
    assert [str(path) for path in package.rglob("*.py") if "sleep(" in path.read_text()] == []
