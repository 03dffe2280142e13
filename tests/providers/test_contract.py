"""The driver contract, run against every driver: simulated (database), AWS (moto server), DigitalOcean (fake API).

Besides instances: each driver verifies its account, lists its catalog, reports its quota, and refuses what the
provider refuses with the error class (and reason code) the engine and the preflight rely on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from providers.aws import AWSDriver
from providers.base import (
    CLUSTER_UUID_TAG,
    NODE_UUID_TAG,
    OWNER_TAG,
    AccountInfo,
    AuthFailed,
    Catalog,
    Instance,
    NodeDriver,
    QuotaExceeded,
)
from providers.digitalocean import DigitalOceanDriver
from providers.models import SimulatedInstance
from providers.simulated import SimulatedDriver
from tests.providers.conftest import (
    AWS_REGION,
    DIGITALOCEAN_REGION,
    OWNER,
    SIMULATED_REGION,
    make_spec,
    refuse_aws_calls,
)


@dataclass
class DriverKit:
    """A driver plus what the contract needs to exercise it on its cloud."""

    driver: NodeDriver
    region: str
    node_type: str
    #: Creates an instance in the same region that does not carry our owner tag; returns its id.
    create_foreign_instance: Callable[[], str]
    #: An id shaped like the provider's ids that no instance has.
    unknown_id: str
    #: Who `verify_account` says the driver's credentials are.
    account_id: str
    #: A region of the driver's catalog that offers `node_type`, and that type's vCPUs.
    catalog_region: str
    node_type_cpu: int
    #: The account limit `get_quota` reports (None: the provider does not say).
    quota_limit: int | None
    #: A driver of the same cloud whose provider refuses creates for this reason code (quota_exceeded, auth_failed).
    refusing_driver: Callable[[str], NodeDriver]


def _simulated_kit(request) -> DriverKit:
    """The simulated cloud, with a foreign row written straight into its table."""
    driver = request.getfixturevalue("simulated_driver")

    def create_foreign_instance() -> str:
        now = timezone.now()
        row = SimulatedInstance.objects.create(
            instance_id="sim-f0f0f0f0f0f0",
            provider_name=driver.name,
            region=SIMULATED_REGION,
            node_type="small",
            disk_gb=10,
            node_uuid="someone-elses-node",
            owner_tag="someone-else",
            tags={OWNER_TAG: "someone-else"},
            created_at=now,
            ready_at=now - timedelta(seconds=1),
        )
        return row.instance_id

    driver.node_limit = 50

    def refusing_driver(reason_code: str) -> NodeDriver:
        if reason_code == "auth_failed":
            return SimulatedDriver(owner_tag=OWNER, provider_name="local", credentials={"token": "invalid-token"})
        full = SimulatedDriver(owner_tag=OWNER, provider_name="local", boot_seconds=0, node_limit=1)
        full.create_node(make_spec(region=SIMULATED_REGION, node_type="small"))
        return full

    return DriverKit(
        driver,
        SIMULATED_REGION,
        "small",
        create_foreign_instance,
        "sim-000000000000",
        account_id="shared",
        catalog_region="local",
        node_type_cpu=1,
        quota_limit=50,
        refusing_driver=refusing_driver,
    )


def _aws_kit(request) -> DriverKit:
    """EC2 on the moto server, with a foreign instance started through boto3 directly."""
    driver = request.getfixturevalue("aws_driver")
    ec2 = request.getfixturevalue("ec2")
    ami = request.getfixturevalue("moto_ami")

    def create_foreign_instance() -> str:
        response = ec2.run_instances(
            ImageId=ami,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "someone-else"}]}],
        )
        return response["Instances"][0]["InstanceId"]

    # The catalog contract reads two regions and a few families: all of moto's would take minutes.
    driver.catalog_regions = [AWS_REGION, "eu-west-1"]
    driver.catalog_instance_types = ("t3.*", "m7g.*")

    def refusing_driver(reason_code: str) -> NodeDriver:
        refusing = AWSDriver(owner_tag=OWNER, endpoint_url=driver.endpoint_url, default_ami=ami)
        if reason_code == "auth_failed":
            refuse_aws_calls(refusing._client(AWS_REGION), "*", "AuthFailure", status=401)
            refuse_aws_calls(refusing._client(AWS_REGION, "sts"), "*", "InvalidClientTokenId", status=403)
        else:
            refuse_aws_calls(refusing._client(AWS_REGION), "RunInstances", "VcpuLimitExceeded")
        return refusing

    return DriverKit(
        driver,
        AWS_REGION,
        "t3.micro",
        create_foreign_instance,
        "i-0123456789abcdef0",
        account_id="123456789012",
        catalog_region=AWS_REGION,
        node_type_cpu=2,
        # moto's Service Quotas knows no EC2 quota: an unreadable quota is None, not an error.
        quota_limit=None,
        refusing_driver=refusing_driver,
    )


def _digitalocean_kit(request) -> DriverKit:
    """DigitalOcean through the fake API, with a droplet somebody else made in the same region."""
    driver = request.getfixturevalue("digitalocean_driver")
    api = request.getfixturevalue("digitalocean_api")

    def create_foreign_instance() -> str:
        return str(api.add_droplet(name="someone-elses-droplet", region=DIGITALOCEAN_REGION, tags=["web"])["id"])

    def refusing_driver(reason_code: str) -> NodeDriver:
        if reason_code == "auth_failed":
            return DigitalOceanDriver(owner_tag=OWNER, token="revoked-token")
        api.droplet_limit = len(api.droplets)
        return driver

    return DriverKit(
        driver,
        DIGITALOCEAN_REGION,
        "s-1vcpu-1gb",
        create_foreign_instance,
        "999999999",
        account_id="b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
        catalog_region=DIGITALOCEAN_REGION,
        node_type_cpu=1,
        quota_limit=25,
        refusing_driver=refusing_driver,
    )


KITS = {"simulated": _simulated_kit, "aws": _aws_kit, "digitalocean": _digitalocean_kit}


@pytest.fixture(
    params=[
        # The mark, not the fixture the kit requests, is what makes pytest-django create the test database:
        # it decides which databases a session needs from the collected tests' marks and static fixtures.
        pytest.param("simulated", marks=pytest.mark.django_db),
        "aws",
        "digitalocean",
    ]
)
def kit(request) -> DriverKit:
    """Each driver in turn."""
    return KITS[request.param](request)


def _ids(instances: list[Instance]) -> set[str]:
    return {instance.instance_id for instance in instances}


def test_create_returns_an_instance_tagged_with_the_node(kit):
    spec = make_spec(region=kit.region, node_type=kit.node_type)

    instance = kit.driver.create_node(spec)

    assert instance.instance_id
    assert instance.node_uuid == spec.node_uuid
    assert instance.cluster_uuid == spec.cluster_uuid
    assert instance.region == kit.region
    assert not instance.is_gone
    # The tags live on the provider's side, not just in the returned object.
    assert kit.driver.get_node(instance_id=instance.instance_id, region=kit.region).node_uuid == spec.node_uuid


def test_created_instance_is_found_got_and_listed(kit):
    spec = make_spec(region=kit.region, node_type=kit.node_type)
    instance = kit.driver.create_node(spec)

    found = kit.driver.find_node(node_uuid=spec.node_uuid, region=kit.region)
    got = kit.driver.get_node(instance_id=instance.instance_id, region=kit.region)
    listed = kit.driver.list_nodes(region=kit.region)

    assert found is not None
    assert found.instance_id == instance.instance_id
    assert got is not None
    assert got.instance_id == instance.instance_id
    assert got.cluster_uuid == spec.cluster_uuid
    assert instance.instance_id in _ids(listed)


def test_find_node_ignores_other_nodes(kit):
    kit.driver.create_node(make_spec(region=kit.region, node_type=kit.node_type))

    assert kit.driver.find_node(node_uuid="00000000-0000-4000-8000-000000000000", region=kit.region) is None


def test_list_nodes_excludes_instances_without_our_owner_tag(kit):
    ours = kit.driver.create_node(make_spec(region=kit.region, node_type=kit.node_type))
    foreign_id = kit.create_foreign_instance()

    listed = _ids(kit.driver.list_nodes(region=kit.region))

    assert ours.instance_id in listed
    assert foreign_id not in listed
    # The foreign instance exists all the same: the driver can see it by id, it just does not claim it.
    assert kit.driver.get_node(instance_id=foreign_id, region=kit.region) is not None


def test_create_twice_for_one_node_does_not_make_a_twin(kit):
    spec = make_spec(region=kit.region, node_type=kit.node_type)

    first = kit.driver.create_node(spec)
    second = kit.driver.create_node(spec)

    assert second.instance_id == first.instance_id
    assert [item.node_uuid for item in kit.driver.list_nodes(region=kit.region)].count(spec.node_uuid) == 1


def test_destroy_makes_the_instance_gone(kit):
    spec = make_spec(region=kit.region, node_type=kit.node_type)
    instance = kit.driver.create_node(spec)

    kit.driver.destroy_node(instance_id=instance.instance_id, region=kit.region)

    after = kit.driver.get_node(instance_id=instance.instance_id, region=kit.region)
    assert after is None or after.is_gone
    assert kit.driver.find_node(node_uuid=spec.node_uuid, region=kit.region) is None
    assert instance.instance_id not in _ids(kit.driver.list_nodes(region=kit.region))


def test_destroying_twice_is_fine(kit):
    instance = kit.driver.create_node(make_spec(region=kit.region, node_type=kit.node_type))

    kit.driver.destroy_node(instance_id=instance.instance_id, region=kit.region)
    kit.driver.destroy_node(instance_id=instance.instance_id, region=kit.region)

    after = kit.driver.get_node(instance_id=instance.instance_id, region=kit.region)
    assert after is None or after.is_gone


def test_destroying_an_unknown_id_is_fine(kit):
    kit.driver.destroy_node(instance_id=kit.unknown_id, region=kit.region)


def test_get_of_an_unknown_id_is_none(kit):
    assert kit.driver.get_node(instance_id=kit.unknown_id, region=kit.region) is None


def test_get_nodes_answers_for_many_ids_at_once_and_leaves_unknown_ones_out(kit):
    created = [kit.driver.create_node(make_spec(region=kit.region, node_type=kit.node_type)) for _ in range(3)]
    gone = created[0]
    kit.driver.destroy_node(instance_id=gone.instance_id, region=kit.region)
    asked = [instance.instance_id for instance in created] + [kit.unknown_id]

    got = kit.driver.get_nodes(instance_ids=asked, region=kit.region)

    assert set(got) <= set(asked) and kit.unknown_id not in got
    for instance in created[1:]:
        assert got[instance.instance_id].instance_id == instance.instance_id
        assert got[instance.instance_id].node_uuid == instance.node_uuid
        assert not got[instance.instance_id].is_gone
    # A destroyed instance is either still known as gone or not known any more, as with `get_node`.
    assert gone.instance_id not in got or got[gone.instance_id].is_gone
    assert kit.driver.get_nodes(instance_ids=[], region=kit.region) == {}


def test_a_node_can_be_created_again_after_its_instance_is_destroyed(kit):
    spec = make_spec(region=kit.region, node_type=kit.node_type)
    first = kit.driver.create_node(spec)
    kit.driver.destroy_node(instance_id=first.instance_id, region=kit.region)

    second = kit.driver.create_node(spec)

    assert second.instance_id != first.instance_id
    assert not second.is_gone
    assert kit.driver.find_node(node_uuid=spec.node_uuid, region=kit.region).instance_id == second.instance_id


def test_instances_carry_the_tag_keys_the_engine_relies_on(kit):
    spec = make_spec(region=kit.region, node_type=kit.node_type)
    instance = kit.driver.create_node(spec)

    got = kit.driver.get_node(instance_id=instance.instance_id, region=kit.region)

    tags = got.extra["tags"]
    flattened = tags if isinstance(tags, dict) else dict(tag.partition(":")[::2] for tag in tags)
    assert flattened[NODE_UUID_TAG] == spec.node_uuid
    assert flattened[CLUSTER_UUID_TAG] == spec.cluster_uuid
    assert flattened[OWNER_TAG] == kit.driver.owner_tag


def test_verify_account_says_who_the_credentials_are(kit):
    info = kit.driver.verify_account()

    assert isinstance(info, AccountInfo)
    assert info.account_id == kit.account_id
    assert isinstance(info.limits, dict)


def test_the_catalog_lists_regions_and_node_types_with_their_sizes(kit):
    catalog = kit.driver.fetch_catalog()

    assert isinstance(catalog, Catalog)
    region_names = {region.name for region in catalog.regions}
    types = {node_type.name: node_type for node_type in catalog.node_types}
    assert kit.catalog_region in region_names
    assert kit.node_type in types
    assert kit.catalog_region in types[kit.node_type].regions
    assert types[kit.node_type].cpu == kit.node_type_cpu
    for node_type in catalog.node_types:
        assert node_type.cpu > 0 and node_type.memory_mb > 0 and node_type.disk_gb >= 0, node_type
        # A type is offered only in regions the catalog lists, so the sync can link it to rows it writes.
        assert set(node_type.regions) <= region_names, node_type.name


def test_quota_counts_a_new_instance(kit):
    before = kit.driver.get_quota(region=kit.region)

    kit.driver.create_node(make_spec(region=kit.region, node_type=kit.node_type))
    after = kit.driver.get_quota(region=kit.region)

    assert after.limit == before.limit == kit.quota_limit
    assert after.in_use - before.in_use == after.cost(nodes=1, cpu=kit.node_type_cpu)


def test_a_create_past_the_account_limit_is_quota_exceeded(kit):
    driver = kit.refusing_driver("quota_exceeded")

    with pytest.raises(QuotaExceeded) as raised:
        driver.create_node(make_spec(region=kit.region, node_type=kit.node_type))

    assert raised.value.reason_code == "quota_exceeded"


def test_refused_credentials_are_auth_failed_on_verify_and_on_create(kit):
    driver = kit.refusing_driver("auth_failed")

    with pytest.raises(AuthFailed) as verify_raised:
        driver.verify_account()
    with pytest.raises(AuthFailed) as create_raised:
        driver.create_node(make_spec(region=kit.region, node_type=kit.node_type))

    assert verify_raised.value.reason_code == create_raised.value.reason_code == "auth_failed"
