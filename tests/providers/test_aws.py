"""The EC2 driver against a real moto server, and its error mapping against stubbed EC2 answers."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.stub import ANY, Stubber

from providers.aws import AWSDriver, _spread
from providers.base import InstanceState, PermanentProviderError, TransientProviderError
from tests.providers.conftest import AWS_REGION, OWNER, make_spec


def _ec2_instance(ec2, instance_id: str) -> dict:
    """The instance as EC2 itself describes it."""
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


@pytest.fixture
def vpc(ec2):
    """A VPC with two subnets in different zones and a security group."""
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=f"{AWS_REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for index, zone in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName="nodes", Description="tutum nodes", VpcId=vpc_id)["GroupId"]
    return {"id": vpc_id, "subnets": subnets, "security_group": group}


@pytest.fixture
def instance_profile(moto_server):
    """An IAM instance profile the nodes can run as."""
    iam = boto3.client("iam", region_name=AWS_REGION, endpoint_url=moto_server.url)
    return iam.create_instance_profile(InstanceProfileName="tutum-node")["InstanceProfile"]


def test_instance_goes_pending_then_running_then_terminated(aws_driver, ec2):
    spec = make_spec(region=AWS_REGION, node_type="t3.micro")

    created = aws_driver.create_node(spec)
    running = aws_driver.get_node(instance_id=created.instance_id, region=AWS_REGION)
    aws_driver.destroy_node(instance_id=created.instance_id, region=AWS_REGION)
    terminated = aws_driver.get_node(instance_id=created.instance_id, region=AWS_REGION)

    assert created.state == InstanceState.PENDING
    assert running.state == InstanceState.RUNNING
    assert aws_driver.check_health(instance_id=created.instance_id, region=AWS_REGION) is False
    assert terminated.state == InstanceState.TERMINATED
    assert terminated.is_gone
    assert _ec2_instance(ec2, created.instance_id)["State"]["Name"] == "terminated"


def test_create_sends_type_zone_disk_tags_and_client_token(aws_driver, ec2, moto_ami):
    spec = make_spec(region=AWS_REGION, node_type="t3.small", disk_gb=60, availability_zone="us-east-1c")
    sent = {}
    client = aws_driver._client(AWS_REGION)
    client.meta.events.register("provide-client-params.ec2.RunInstances", lambda params, **kwargs: sent.update(params))

    instance = aws_driver.create_node(spec)

    described = _ec2_instance(ec2, instance.instance_id)
    assert sent["ClientToken"] == spec.node_uuid
    assert described["InstanceType"] == "t3.small"
    assert described["ImageId"] == moto_ami
    assert described["Placement"]["AvailabilityZone"] == "us-east-1c"
    assert instance.availability_zone == "us-east-1c"
    tags = {tag["Key"]: tag["Value"] for tag in described["Tags"]}
    assert tags == {
        "Name": f"tutum-{spec.node_uuid}",
        "tutum-node-uuid": spec.node_uuid,
        "tutum-cluster-uuid": spec.cluster_uuid,
        "tutum-managed-by": OWNER,
    }
    # The disk size lands on the AMI's root device rather than on an extra volume.
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance.instance_id]}])
    assert [(volume["Attachments"][0]["Device"], volume["Size"]) for volume in volumes["Volumes"]] == [
        (described["RootDeviceName"], 60)
    ]


def test_ami_comes_from_the_region_map_before_the_default(moto_server, ec2, moto_ami):
    driver = AWSDriver(
        owner_tag=OWNER, endpoint_url=moto_server.url, amis={AWS_REGION: moto_ami}, default_ami="ami-00000000"
    )

    instance = driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert _ec2_instance(ec2, instance.instance_id)["ImageId"] == moto_ami


def test_no_ami_for_the_region_is_permanent(moto_server, ec2):
    driver = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, amis={"eu-west-1": "ami-12345678"})

    with pytest.raises(PermanentProviderError, match="no AMI configured for region us-east-1"):
        driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))


def test_provider_options_map_to_subnet_security_groups_and_instance_profile(aws_driver, ec2, vpc, instance_profile):
    spec = make_spec(
        region=AWS_REGION,
        node_type="t3.micro",
        provider_options={
            "vpc": {"id": vpc["id"], "subnets": vpc["subnets"], "security_groups": [vpc["security_group"]]},
            "iam": {"instance_profile_name": "tutum-node"},
        },
    )

    instance = aws_driver.create_node(spec)

    described = _ec2_instance(ec2, instance.instance_id)
    assert described["VpcId"] == vpc["id"]
    assert described["SubnetId"] == _spread(vpc["subnets"], spec.node_uuid)
    assert [group["GroupId"] for group in described["SecurityGroups"]] == [vpc["security_group"]]
    assert described["IamInstanceProfile"]["Arn"] == instance_profile["Arn"]
    assert instance.extra["iam_instance_profile_arn"] == instance_profile["Arn"]


def test_nodes_spread_over_the_listed_subnets(aws_driver, ec2, vpc):
    options = {"vpc": {"id": vpc["id"], "subnets": vpc["subnets"]}}

    subnets = {
        aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro", provider_options=options)).extra[
            "subnet_id"
        ]
        for _ in range(12)
    }

    assert subnets == set(vpc["subnets"])


def test_vpc_without_subnets_uses_one_of_the_vpc_subnets_in_the_zone(aws_driver, ec2, vpc):
    spec = make_spec(
        region=AWS_REGION,
        node_type="t3.micro",
        availability_zone="us-east-1b",
        provider_options={"vpc": {"id": vpc["id"]}},
    )

    instance = aws_driver.create_node(spec)

    assert _ec2_instance(ec2, instance.instance_id)["SubnetId"] == vpc["subnets"][1]


@pytest.mark.parametrize(
    "options",
    [
        {"vpc": {"subnets": ["subnet-1"]}},
        {"vpc": {"id": "vpc-1", "subnets": ["subnet-1", 3]}},
        {"iam": {}},
        {"iam": "my_instance_profile"},
    ],
)
def test_malformed_provider_options_are_permanent(aws_driver, options):
    with pytest.raises(PermanentProviderError, match="provider_options"):
        aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro", provider_options=options))


def test_unknown_subnet_is_permanent_with_the_aws_code(aws_driver, vpc):
    options = {"vpc": {"id": vpc["id"], "subnets": ["subnet-0000000000000000f"]}}

    with pytest.raises(PermanentProviderError, match=r"InvalidSubnetID\.NotFound"):
        aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro", provider_options=options))


def test_find_node_ignores_another_servers_instance_of_the_same_node(moto_server, ec2, moto_ami):
    ours = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, default_ami=moto_ami)
    theirs = AWSDriver(owner_tag="another-server", endpoint_url=moto_server.url, default_ami=moto_ami)
    spec = make_spec(region=AWS_REGION, node_type="t3.micro")
    their_instance = theirs.create_node(spec)

    assert ours.find_node(node_uuid=spec.node_uuid, region=AWS_REGION) is None
    assert their_instance.instance_id not in {item.instance_id for item in ours.list_nodes(region=AWS_REGION)}


def test_list_nodes_pages_through_every_instance(aws_driver):
    created = {aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro")).instance_id for _ in range(7)}
    client = aws_driver._client(AWS_REGION)
    pages = []

    def small_pages(params, **kwargs):
        # Force several pages so a driver reading only the first one would miss instances.
        params["MaxResults"] = 5
        pages.append(params.get("NextToken"))

    client.meta.events.register("provide-client-params.ec2.DescribeInstances", small_pages)

    listed = {instance.instance_id for instance in aws_driver.list_nodes(region=AWS_REGION)}

    assert listed == created
    assert len(pages) >= 2


def test_one_client_per_region_even_when_threads_race(moto_server):
    driver = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, default_ami="ami-12345678")

    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = list(pool.map(lambda index: driver._client(("us-east-1", "eu-west-1")[index % 2]), range(32)))

    assert len({id(client) for client in clients}) == 2
    assert {client.meta.region_name for client in clients} == {"us-east-1", "eu-west-1"}


def test_clients_leave_retries_to_the_engine(moto_server):
    client = AWSDriver(endpoint_url=moto_server.url)._client(AWS_REGION)

    # One attempt plus one retry in all: botocore's own backoff stays short and the engine decides the rest.
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert client.meta.config.connect_timeout == 10
    assert client.meta.config.read_timeout == 10


# Error mapping. A Stubber answers in place of the endpoint, so these need no server.


@pytest.fixture
def stubbed():
    """A driver whose us-east-1 client answers from a Stubber."""
    driver = AWSDriver(owner_tag=OWNER, endpoint_url="http://127.0.0.1:9", default_ami="ami-12345678")
    with Stubber(driver._client(AWS_REGION)) as stubber:
        yield driver, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("RequestLimitExceeded", 503),
        ("Throttling", 400),
        ("InternalError", 500),
        ("Unavailable", 503),
        ("SomethingNewButServerSide", 502),
    ],
)
def test_throttling_and_server_errors_are_transient(stubbed, code, status):
    driver, stubber = stubbed
    stubber.add_client_error("describe_instances", service_error_code=code, http_status_code=status)

    with pytest.raises(TransientProviderError, match=re.escape(code)):
        driver.list_nodes(region=AWS_REGION)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("UnauthorizedOperation", 403),
        ("AuthFailure", 401),
        ("InvalidAMIID.Malformed", 400),
        ("InvalidParameterValue", 400),
        ("InstanceLimitExceeded", 400),
        ("VcpuLimitExceeded", 400),
    ],
)
def test_auth_parameter_and_quota_errors_are_permanent(stubbed, code, status):
    driver, stubber = stubbed
    stubber.add_response("describe_instances", {"Reservations": []})
    stubber.add_client_error("describe_images", service_error_code="InvalidAMIID.NotFound", http_status_code=400)
    stubber.add_client_error("run_instances", service_error_code=code, http_status_code=status)

    with pytest.raises(PermanentProviderError, match=re.escape(code)) as raised:
        driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert not isinstance(raised.value, TransientProviderError)


def test_unknown_instance_id_is_none_on_get_and_fine_on_destroy(stubbed):
    driver, stubber = stubbed
    stubber.add_client_error("describe_instances", service_error_code="InvalidInstanceID.NotFound")
    stubber.add_client_error("terminate_instances", service_error_code="InvalidInstanceID.NotFound")
    stubber.add_client_error("terminate_instances", service_error_code="InvalidInstanceID.Malformed")

    assert driver.get_node(instance_id="i-0123456789abcdef0", region=AWS_REGION) is None
    driver.destroy_node(instance_id="i-0123456789abcdef0", region=AWS_REGION)
    driver.destroy_node(instance_id="not-an-instance", region=AWS_REGION)


def test_a_client_token_burned_by_a_terminated_instance_gets_a_derived_token(stubbed):
    driver, stubber = stubbed
    spec = make_spec(region=AWS_REGION, node_type="t3.micro")
    corpse = {"InstanceId": "i-0aaaaaaaaaaaaaaaa", "State": {"Name": "terminated", "Code": 48}}
    fresh = {"InstanceId": "i-0bbbbbbbbbbbbbbbb", "State": {"Name": "pending", "Code": 0}}
    stubber.add_response("describe_instances", {"Reservations": []})
    stubber.add_response("describe_images", {"Images": [{"ImageId": "ami-12345678", "RootDeviceName": "/dev/sda1"}]})
    stubber.add_response("run_instances", {"Instances": [corpse]})
    stubber.add_response(
        "run_instances",
        {"Instances": [fresh]},
        expected_params={
            "MinCount": 1,
            "MaxCount": 1,
            "ImageId": "ami-12345678",
            "InstanceType": "t3.micro",
            "ClientToken": f"{spec.node_uuid}:i-0aaaaaaaaaaaaaaaa",
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/sda1",
                    "Ebs": {"VolumeSize": 20, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ],
            "TagSpecifications": ANY,
        },
    )

    instance = driver.create_node(spec)

    assert instance.instance_id == "i-0bbbbbbbbbbbbbbbb"
    assert instance.state == InstanceState.PENDING


def test_unreachable_endpoint_is_transient():
    # Port 9 (discard) has no listener here: the connection is refused at once.
    driver = AWSDriver(owner_tag=OWNER, endpoint_url="http://127.0.0.1:9", default_ami="ami-12345678")

    with pytest.raises(TransientProviderError, match="EndpointConnectionError"):
        driver.list_nodes(region=AWS_REGION)


def test_missing_credentials_are_permanent(monkeypatch, moto_server):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # Without this boto3 would spend seconds asking for an instance role.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    driver = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, default_ami="ami-12345678")

    with pytest.raises(PermanentProviderError, match="NoCredentialsError"):
        driver.list_nodes(region=AWS_REGION)
