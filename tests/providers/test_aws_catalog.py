"""The EC2 driver's account, catalog, quota and AMI calls against the moto server, and its error reason codes."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from providers.aws import UBUNTU_AMI_PARAMETER, AWSDriver
from providers.base import (
    AuthFailed,
    CapacityUnavailable,
    InvalidProviderRequest,
    PermanentProviderError,
    QuotaExceeded,
    RateLimited,
    TransientProviderError,
)
from tests.providers.conftest import AWS_REGION, OWNER, make_spec, refuse_aws_calls

AMI_PARAMETER = "/tutum-test/ubuntu/24.04/ami-id"  # moto refuses writes under /aws/, AWS's own namespace


def _image_of(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["ImageId"]


def test_verify_account_without_a_readable_quota_has_no_limits(aws_driver):
    info = aws_driver.verify_account()

    assert (info.account_id, info.label) == ("123456789012", "arn:aws:sts::123456789012:user/moto")
    assert info.limits == {}


def test_a_readable_vcpu_quota_is_the_limit(aws_driver, ec2):
    quotas = aws_driver._client(AWS_REGION, "service-quotas")
    answer = {"Quota": {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "Value": 64.0}}
    aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    with Stubber(quotas) as stubber:
        stubber.add_response("get_service_quota", answer, {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"})
        stubber.add_response("get_service_quota", answer, {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"})
        info = aws_driver.verify_account()
        quota = aws_driver.get_quota(region=AWS_REGION)

    assert info.limits == {"vcpu_limit": 64, "vcpu_limit_region": AWS_REGION}
    assert (quota.unit, quota.limit, quota.in_use) == ("vcpus", 64, 2)
    assert quota.cost(nodes=3, cpu=2) == 6


def test_quota_in_use_counts_the_accounts_standard_on_demand_vcpus(aws_driver, ec2, moto_ami):
    aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))  # 2 vCPUs
    ec2.run_instances(ImageId=moto_ami, InstanceType="m5.xlarge", MinCount=1, MaxCount=1)  # not ours, 4: counts
    ec2.run_instances(ImageId=moto_ami, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)  # G quota, not this one
    stopped = ec2.run_instances(ImageId=moto_ami, InstanceType="m5.large", MinCount=1, MaxCount=1)
    ec2.stop_instances(InstanceIds=[stopped["Instances"][0]["InstanceId"]])

    quota = aws_driver.get_quota(region=AWS_REGION)

    assert (quota.unit, quota.limit, quota.in_use) == ("vcpus", None, 6)


def test_the_catalog_reads_the_given_regions_zones_and_matching_types(aws_driver):
    aws_driver.catalog_regions = lambda: [AWS_REGION, "xx-nowhere-1"]  # asked at sync time
    aws_driver.catalog_instance_types = ("t3.micro", "m6id.*")

    catalog = aws_driver.fetch_catalog()

    regions = {region.name: region for region in catalog.regions}
    types = {node_type.name: node_type for node_type in catalog.node_types}
    assert set(regions) == {AWS_REGION, "xx-nowhere-1"}
    assert regions[AWS_REGION].label == "US East (N. Virginia)"
    assert {"us-east-1a", "us-east-1b"} <= set(regions[AWS_REGION].zones)
    assert not regions["xx-nowhere-1"].available  # not a region this account has
    assert {"t3.micro", "m6id.large", "m6id.xlarge"} <= set(types)
    assert all(name == "t3.micro" or name.startswith("m6id.") for name in types)
    micro, storage = types["t3.micro"], types["m6id.large"]
    assert (micro.cpu, micro.memory_mb, micro.disk_gb, micro.price_monthly) == (2, 1024, 0, None)
    assert (storage.cpu, storage.memory_mb, storage.disk_gb) == (2, 8192, 118)  # its instance store
    assert micro.regions == (AWS_REGION,)
    assert set(micro.zones) <= set(regions[AWS_REGION].zones)


def test_the_ami_is_todays_ubuntu_from_ssm_read_once_per_region(ec2, moto_server, moto_ami):
    ssm = boto3.client("ssm", region_name=AWS_REGION, endpoint_url=moto_server.url)
    ssm.put_parameter(Name=AMI_PARAMETER, Value=moto_ami, Type="String", DataType="aws:ec2:image")
    driver = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, ami_parameter=AMI_PARAMETER)
    reads = []
    driver._client(AWS_REGION, "ssm").meta.events.register("before-call.ssm.GetParameter", lambda **kw: reads.append(1))

    first = driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))
    second = driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert _image_of(ec2, first.instance_id) == _image_of(ec2, second.instance_id) == moto_ami
    assert len(reads) == 1


def test_the_default_parameter_is_canonicals_ubuntu_lts():
    driver = AWSDriver(owner_tag=OWNER, endpoint_url="http://127.0.0.1:9")
    with Stubber(driver._client(AWS_REGION, "ssm")) as stubber:
        stubber.add_response(
            "get_parameter",
            {"Parameter": {"Name": UBUNTU_AMI_PARAMETER, "Value": "ami-0abcdef1234567890"}},
            {"Name": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"},
        )
        image = driver._image_for(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert image == "ami-0abcdef1234567890"


def test_a_clusters_ami_beats_the_regions_which_beats_the_default(ec2, moto_server, moto_ami):
    region_ami, cluster_ami = (
        ec2.register_image(Name=name, RootDeviceName="/dev/sda1")["ImageId"] for name in ("region", "cluster")
    )
    driver = AWSDriver(
        owner_tag=OWNER, endpoint_url=moto_server.url, amis={AWS_REGION: region_ami}, default_ami=moto_ami
    )

    by_region = driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))
    by_cluster = driver.create_node(
        make_spec(region=AWS_REGION, node_type="t3.micro", provider_options={"ami": cluster_ami})
    )
    driver.amis = {}
    by_default = driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert _image_of(ec2, by_region.instance_id) == region_ami
    assert _image_of(ec2, by_cluster.instance_id) == cluster_ami
    assert _image_of(ec2, by_default.instance_id) == moto_ami


@pytest.mark.parametrize(
    ("code", "status", "error_class"),
    [
        ("InsufficientInstanceCapacity", 500, CapacityUnavailable),
        ("VcpuLimitExceeded", 400, QuotaExceeded),
        ("InstanceLimitExceeded", 400, QuotaExceeded),
        ("MaxSpotInstanceCountExceeded", 400, QuotaExceeded),
        ("AuthFailure", 401, AuthFailed),
        ("UnauthorizedOperation", 403, AuthFailed),
        ("InvalidClientTokenId", 403, AuthFailed),
        ("SignatureDoesNotMatch", 403, AuthFailed),
        ("AccessDenied", 403, AuthFailed),
        ("RequestLimitExceeded", 503, RateLimited),
        ("Throttling", 400, RateLimited),
        ("InvalidParameterValue", 400, InvalidProviderRequest),
        ("InvalidParameterCombination", 400, InvalidProviderRequest),
        ("InvalidAMIID.NotFound", 400, InvalidProviderRequest),
        ("InvalidAMIID.Malformed", 400, InvalidProviderRequest),
        ("InvalidInstanceType", 400, InvalidProviderRequest),
        ("InternalError", 500, TransientProviderError),
        ("SomethingNewClientSide", 400, PermanentProviderError),
    ],
)
def test_run_instances_errors_map_onto_error_classes_and_reason_codes(aws_driver, code, status, error_class):
    refuse_aws_calls(aws_driver._client(AWS_REGION), "RunInstances", code, status=status)

    with pytest.raises(error_class, match=code) as raised:
        aws_driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert type(raised.value) is error_class
    assert raised.value.reason_code == error_class.reason_code


def test_a_missing_ami_parameter_is_an_invalid_request_saying_what_to_configure(ec2, moto_server):
    driver = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, ami_parameter="/tutum-test/missing")

    with pytest.raises(InvalidProviderRequest, match=r"no AMI configured for region us-east-1 \(AWS_AMIS"):
        driver.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))
