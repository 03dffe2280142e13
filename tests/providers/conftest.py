"""Fixtures for the driver tests: a moto server for AWS, a fake DigitalOcean API, drivers wired to them."""

from __future__ import annotations

import uuid

import boto3
import pytest
import responses
from botocore.awsrequest import AWSResponse

from providers.aws import AWSDriver
from providers.base import NodeSpec
from providers.digitalocean import DigitalOceanDriver
from providers.simulated import SimulatedDriver
from tests.providers.digitalocean_fake import FakeDigitalOcean
from tests.support.moto_server import moto_server as moto_server

AWS_REGION = "us-east-1"
DIGITALOCEAN_REGION = "lon1"
SIMULATED_REGION = "sim-1"
OWNER = "tutum-api-test"


def make_spec(*, region: str, node_type: str, **overrides) -> NodeSpec:
    """A node spec with fresh uuids, so tests never collide on tags."""
    fields = {
        "node_uuid": str(uuid.uuid4()),
        "cluster_uuid": str(uuid.uuid4()),
        "region": region,
        "node_type": node_type,
        "disk_gb": 20,
    }
    fields.update(overrides)
    return NodeSpec(**fields)


@pytest.fixture
def ec2(moto_server):
    """A boto3 EC2 client on a freshly reset moto server, for arranging and checking state behind the driver."""
    moto_server.reset()
    return boto3.client("ec2", region_name=AWS_REGION, endpoint_url=moto_server.url)


@pytest.fixture(scope="session")
def moto_ami(moto_server) -> str:
    """One of the AMIs moto ships (they survive a reset), so root device lookups see a real image.

    Looked up once: listing moto's catalogue of images takes about a second.
    """
    client = boto3.client("ec2", region_name=AWS_REGION, endpoint_url=moto_server.url)
    images = client.describe_images(Owners=["amazon"])["Images"]
    return next(image["ImageId"] for image in images if image.get("RootDeviceName"))


@pytest.fixture
def aws_driver(ec2, moto_server, moto_ami) -> AWSDriver:
    """The AWS driver pointed at the moto server."""
    return AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, default_ami=moto_ami)


@pytest.fixture
def digitalocean_api():
    """The fake DigitalOcean API; any request it does not serve fails the test instead of leaving the machine."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeDigitalOcean(mock)


@pytest.fixture
def digitalocean_driver(digitalocean_api) -> DigitalOceanDriver:
    """The DigitalOcean driver talking to the fake API with its token."""
    return DigitalOceanDriver(owner_tag=OWNER, token=digitalocean_api.token, image="ubuntu-24-04-x64")


@pytest.fixture
def simulated_driver(db) -> SimulatedDriver:
    """The simulated driver with instant boots and no injected failures."""
    return SimulatedDriver(owner_tag=OWNER, provider_name="local", boot_seconds=0, failure_rate=0.0)


def refuse_aws_calls(client, operation: str, code: str, *, status: int = 400) -> None:
    """Make every `operation` call of this boto3 client fail with an AWS error `code`, as the real API would answer.

    The answer is given from botocore's `before-call` hook (what its Stubber uses), so the client's other operations
    still reach the moto server. `operation` is the API name ("RunInstances") or "*" for all of the service's.
    """
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-call.{service}" if operation == "*" else f"before-call.{service}.{operation}"

    def answer(**kwargs):
        parsed = {
            "Error": {"Code": code, "Message": f"{code} (refused by the test)"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse(None, status, {}, None), parsed

    client.meta.events.register_first(event, answer)
