"""The DigitalOcean driver against recorded-shape API v2 answers: mapping, tags, paging and error handling."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from providers.base import InstanceState, PermanentProviderError, TransientProviderError
from providers.digitalocean import DigitalOceanDriver, encode_tag
from tests.providers.conftest import DIGITALOCEAN_REGION, OWNER, make_spec
from tests.providers.digitalocean_fake import API

DROPLET_7 = f"{API}/v2/droplets/7"
DROPLETS = f"{API}/v2/droplets"


@pytest.fixture
def api():
    """A bare `responses` mock for answers the fake does not give; unmatched requests fail the test."""
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def driver() -> DigitalOceanDriver:
    """A driver with a token, talking to whatever `api` answers."""
    return DigitalOceanDriver(owner_tag=OWNER, token="test-token")


def test_create_sends_name_region_size_image_and_encoded_tags(digitalocean_driver, digitalocean_api):
    spec = make_spec(region=DIGITALOCEAN_REGION, node_type="s-2vcpu-4gb")

    instance = digitalocean_driver.create_node(spec)

    create_bodies = digitalocean_api.create_bodies
    assert create_bodies == [
        {
            "name": f"tutum-{spec.node_uuid}",
            "region": "lon1",
            "size": "s-2vcpu-4gb",
            "image": "ubuntu-24-04-x64",
            "tags": [
                f"tutum-node-uuid:{spec.node_uuid}",
                f"tutum-cluster-uuid:{spec.cluster_uuid}",
                f"tutum-managed-by:{OWNER}",
            ],
        }
    ]
    assert instance.state == InstanceState.PENDING
    assert instance.node_uuid == spec.node_uuid
    assert instance.public_ip is None


def test_booted_droplet_is_running_with_its_public_address(digitalocean_driver, digitalocean_api):
    instance = digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))
    digitalocean_driver.get_node(instance_id=instance.instance_id, region=DIGITALOCEAN_REGION)  # the boot

    running = digitalocean_driver.get_node(instance_id=instance.instance_id, region=DIGITALOCEAN_REGION)

    droplet = digitalocean_api.droplets[int(instance.instance_id)]
    public = next(network["ip_address"] for network in droplet["networks"]["v4"] if network["type"] == "public")
    private = next(network["ip_address"] for network in droplet["networks"]["v4"] if network["type"] == "private")
    assert running.state == InstanceState.RUNNING
    assert running.public_ip == public
    assert running.extra["private_ip"] == private
    assert digitalocean_driver.check_health(instance_id=instance.instance_id, region=DIGITALOCEAN_REGION)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("new", InstanceState.PENDING),
        ("active", InstanceState.RUNNING),
        ("off", InstanceState.STOPPED),
        ("archive", InstanceState.TERMINATED),
        ("something-new", InstanceState.UNKNOWN),
    ],
)
def test_droplet_status_maps_to_instance_state(digitalocean_driver, digitalocean_api, status, state):
    droplet = digitalocean_api.add_droplet(name="web-1", region=DIGITALOCEAN_REGION)
    droplet["status"] = status

    assert digitalocean_driver.get_node(instance_id=str(droplet["id"]), region=DIGITALOCEAN_REGION).state == state


def test_tags_are_restricted_to_the_characters_digitalocean_allows():
    assert encode_tag("tutum-managed-by", "acme.example/prod server") == "tutum-managed-by:acme_example_prod_server"
    assert len(encode_tag("tutum-managed-by", "x" * 400)) == 255


def test_find_node_lists_by_the_node_tag_and_skips_other_regions_and_owners(digitalocean_driver, digitalocean_api):
    spec = make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb")
    node_tag = encode_tag("tutum-node-uuid", spec.node_uuid)
    digitalocean_api.add_droplet(name="elsewhere", region="nyc3", tags=[node_tag, f"tutum-managed-by:{OWNER}"])
    digitalocean_api.add_droplet(name="not-ours", region=DIGITALOCEAN_REGION, tags=[node_tag])

    assert digitalocean_driver.find_node(node_uuid=spec.node_uuid, region=DIGITALOCEAN_REGION) is None

    created = digitalocean_driver.create_node(spec)

    found = digitalocean_driver.find_node(node_uuid=spec.node_uuid, region=DIGITALOCEAN_REGION)
    assert found.instance_id == created.instance_id
    asked_tags = {
        parse_qs(urlparse(call.request.url).query).get("tag_name", [""])[0] for call in digitalocean_api.mock.calls
    }
    assert node_tag in asked_tags


def test_list_nodes_reads_every_page(digitalocean_driver, digitalocean_api):
    created = {
        digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb")).instance_id
        for _ in range(5)
    }
    digitalocean_driver.PAGE_SIZE = 2

    listed = {instance.instance_id for instance in digitalocean_driver.list_nodes(region=DIGITALOCEAN_REGION)}

    assert listed == created
    queries = [parse_qs(urlparse(call.request.url).query) for call in digitalocean_api.mock.calls]
    listing_pages = [query["page"][0] for query in queries if query.get("tag_name") == [f"tutum-managed-by:{OWNER}"]]
    assert listing_pages == ["1", "2", "3"]


def test_get_in_another_region_is_none(digitalocean_driver, digitalocean_api):
    droplet = digitalocean_api.add_droplet(name="web-1", region="ams3")

    assert digitalocean_driver.get_node(instance_id=str(droplet["id"]), region=DIGITALOCEAN_REGION) is None


def test_get_of_an_id_that_cannot_be_a_droplet_makes_no_request(digitalocean_driver, digitalocean_api):
    assert digitalocean_driver.get_node(instance_id="i-0123456789abcdef0", region=DIGITALOCEAN_REGION) is None
    digitalocean_driver.destroy_node(instance_id="not-a-droplet", region=DIGITALOCEAN_REGION)

    assert len(digitalocean_api.mock.calls) == 0


def test_404_on_get_is_none(api, driver):
    api.get(
        DROPLET_7,
        status=404,
        json={"id": "not_found", "message": "The resource you were accessing could not be found."},
    )

    assert driver.get_node(instance_id="7", region=DIGITALOCEAN_REGION) is None
    assert len(api.calls) == 1


def test_404_on_delete_is_success(api, driver):
    api.delete(
        DROPLET_7,
        status=404,
        json={"id": "not_found", "message": "The resource you were accessing could not be found."},
    )

    driver.destroy_node(instance_id="7", region=DIGITALOCEAN_REGION)

    assert len(api.calls) == 1


def test_429_with_retry_after_is_transient_after_one_request(api, driver):
    api.get(
        DROPLET_7,
        status=429,
        json={"id": "too_many_requests", "message": "API Rate limit exceeded."},
        headers={"Retry-After": "60", "ratelimit-limit": "5000", "ratelimit-remaining": "0"},
    )

    with pytest.raises(TransientProviderError, match="HTTP 429, retry after 60s") as raised:
        driver.get_node(instance_id="7", region=DIGITALOCEAN_REGION)

    # One request, not eleven: azure-core's retry policy (which would also sleep 60 s) is off.
    assert len(api.calls) == 1
    assert "too_many_requests" in str(raised.value)


@pytest.mark.parametrize(
    ("method", "url", "call"),
    [
        ("POST", DROPLETS, "create"),
        ("GET", DROPLETS, "list"),
        ("GET", DROPLET_7, "get"),
        ("DELETE", DROPLET_7, "destroy"),
    ],
)
@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient_after_one_request(api, driver, method, url, call, status):
    # Creating lists first (no twin); that answer is fine so the create itself meets the error.
    if call == "create":
        api.get(DROPLETS, json={"droplets": [], "links": {}, "meta": {"total": 0}})
    api.add(method, url, status=status, json={"id": "server_error", "message": "Unexpected server-side error"})

    with pytest.raises(TransientProviderError, match=f"HTTP {status}"):
        _call(driver, call)

    assert len([item for item in api.calls if item.request.method == method]) == 1


def test_connection_errors_are_transient(api, driver):
    api.get(DROPLET_7, body=requests.ConnectionError("connection refused"))

    with pytest.raises(TransientProviderError, match="ServiceRequestError"):
        driver.get_node(instance_id="7", region=DIGITALOCEAN_REGION)

    assert len(api.calls) == 1


def test_a_garbled_answer_is_transient(api, driver):
    api.get(DROPLET_7, status=200, body="<html>upstream gateway hiccup</html>", content_type="text/html")

    with pytest.raises(TransientProviderError):
        driver.get_node(instance_id="7", region=DIGITALOCEAN_REGION)


def test_401_is_permanent(digitalocean_api):
    driver = DigitalOceanDriver(owner_tag=OWNER, token="revoked-token")

    with pytest.raises(PermanentProviderError, match="HTTP 401") as raised:
        driver.list_nodes(region=DIGITALOCEAN_REGION)

    assert not isinstance(raised.value, TransientProviderError)
    assert "Unable to authenticate you" in str(raised.value)
    assert len(digitalocean_api.mock.calls) == 1


def test_422_is_permanent(digitalocean_driver, digitalocean_api):
    with pytest.raises(PermanentProviderError, match="HTTP 422") as raised:
        digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-64vcpu-no-such-size"))

    assert "unprocessable_entity" in str(raised.value)
    assert len([call for call in digitalocean_api.mock.calls if call.request.method == "POST"]) == 1


@pytest.mark.parametrize("token", ["", None])
def test_missing_token_is_permanent_and_sends_nothing(api, token):
    driver = DigitalOceanDriver(owner_tag=OWNER, token=token)

    with pytest.raises(PermanentProviderError, match="DIGITALOCEAN_TOKEN"):
        driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))
    with pytest.raises(PermanentProviderError, match="DIGITALOCEAN_TOKEN"):
        driver.get_node(instance_id="7", region=DIGITALOCEAN_REGION)

    assert len(api.calls) == 0


def test_requests_carry_the_bearer_token_and_json(digitalocean_driver, digitalocean_api):
    digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))

    post = next(call.request for call in digitalocean_api.mock.calls if call.request.method == "POST")
    assert post.headers["Authorization"] == "Bearer test-token"
    assert post.headers["Content-Type"] == "application/json"
    assert json.loads(post.body)["size"] == "s-1vcpu-1gb"


def _call(driver: DigitalOceanDriver, call: str) -> None:
    """Run one driver operation that hits the endpoint the test set up."""
    if call == "create":
        driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))
    elif call == "list":
        driver.list_nodes(region=DIGITALOCEAN_REGION)
    elif call == "get":
        driver.get_node(instance_id="7", region=DIGITALOCEAN_REGION)
    else:
        driver.destroy_node(instance_id="7", region=DIGITALOCEAN_REGION)
