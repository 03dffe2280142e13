"""The DigitalOcean driver's account, catalog and quota calls, and its answers mapped onto reason codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
import responses

from providers.base import (
    AuthFailed,
    CapacityUnavailable,
    InvalidProviderRequest,
    PermanentProviderError,
    QuotaExceeded,
    RateLimited,
    TransientProviderError,
)
from providers.digitalocean import DigitalOceanDriver
from tests.providers.conftest import DIGITALOCEAN_REGION, OWNER, make_spec
from tests.providers.digitalocean_fake import API, DROPLET_LIMIT_REACHED, SIZE_UNAVAILABLE


def test_verify_account_reads_the_uuid_email_and_droplet_limit(digitalocean_driver, digitalocean_api):
    digitalocean_api.droplet_limit = 10

    info = digitalocean_driver.verify_account()

    assert info.account_id == "b6fr89dbf6d9156cace5f3c78dc9851d957381ef"
    assert info.label == "sammy@example.com"
    assert info.limits == {"droplet_limit": 10}


def test_a_refused_token_is_auth_failed_naming_digitaloceans_answer(digitalocean_api):
    driver = DigitalOceanDriver(owner_tag=OWNER, credentials={"token": "revoked"})

    with pytest.raises(AuthFailed, match="HTTP 401: Unauthorized: Unable to authenticate you") as raised:
        driver.verify_account()

    assert raised.value.reason_code == "auth_failed"


def test_no_token_at_all_is_auth_failed_without_a_request(digitalocean_api):
    with pytest.raises(AuthFailed, match="no API token"):
        DigitalOceanDriver(owner_tag=OWNER).verify_account()

    assert digitalocean_api.bearer_tokens == []


def test_the_catalog_has_every_region_and_size_across_pages(digitalocean_driver, digitalocean_api):
    digitalocean_driver.PAGE_SIZE = 2  # four regions and three sizes: two pages each

    catalog = digitalocean_driver.fetch_catalog()

    regions = {region.name: region for region in catalog.regions}
    sizes = {size.name: size for size in catalog.node_types}
    assert set(regions) == {"lon1", "nyc3", "ams3", "sfo1"}
    assert regions["lon1"].label == "London 1" and regions["lon1"].available
    assert not regions["sfo1"].available
    assert set(sizes) == {"s-1vcpu-1gb", "s-2vcpu-4gb", "c-2"}
    small = sizes["s-1vcpu-1gb"]
    assert (small.cpu, small.memory_mb, small.disk_gb) == (1, 1024, 25)
    assert small.price_monthly == Decimal("6.00")
    # Through the JSON number's text, so the price is exact, not a binary fraction.
    assert small.price_hourly == Decimal("0.00893")
    assert small.regions == ("ams3", "lon1", "nyc3")
    assert sizes["c-2"].regions == ("nyc3",)
    assert small.label == "Basic 1 vCPU / 1 GB / 25 GB"


def test_quota_is_the_droplet_limit_and_every_droplet_of_the_account(digitalocean_driver, digitalocean_api):
    digitalocean_api.droplet_limit = 5
    digitalocean_api.add_droplet(name="not-ours", region="nyc3", tags=["web"])
    digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))

    quota = digitalocean_driver.get_quota(region=DIGITALOCEAN_REGION)

    # The limit is the account's, so droplets in other regions and without our tags count too.
    assert (quota.unit, quota.limit, quota.in_use) == ("droplets", 5, 2)
    assert quota.cost(nodes=3, cpu=4) == 3


def test_a_create_past_the_droplet_limit_is_quota_exceeded_with_digitaloceans_message(
    digitalocean_driver, digitalocean_api
):
    digitalocean_api.droplet_limit = 1
    digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))

    with pytest.raises(QuotaExceeded, match="will exceed your droplet limit"):
        digitalocean_driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))

    assert len(digitalocean_api.droplets) == 1


@pytest.mark.parametrize(("region", "size"), [("lon1", "c-2"), ("sfo1", "s-1vcpu-1gb")])
def test_a_size_or_region_closed_to_new_droplets_is_capacity_unavailable(
    digitalocean_driver, digitalocean_api, region, size
):
    with pytest.raises(CapacityUnavailable, match="not available") as raised:
        digitalocean_driver.create_node(make_spec(region=region, node_type=size))

    assert raised.value.reason_code == "capacity_unavailable"
    assert digitalocean_api.droplets == {}


@pytest.fixture
def refusing_api():
    """A DigitalOcean that lists no droplets and answers every create with what the test registers."""
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/v2/droplets", json={"droplets": [], "links": {}, "meta": {"total": 0}})
        yield mock


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (429, {"id": "too_many_requests", "message": "API Rate limit exceeded."}, RateLimited),
        (401, {"id": "Unauthorized", "message": "Unable to authenticate you"}, AuthFailed),
        (403, {"id": "Forbidden", "message": "You do not have access for the attempted action."}, AuthFailed),
        (422, DROPLET_LIMIT_REACHED, QuotaExceeded),
        (422, SIZE_UNAVAILABLE, CapacityUnavailable),
        (422, {"id": "unprocessable_entity", "message": "Region is not available"}, CapacityUnavailable),
        (422, {"id": "unprocessable_entity", "message": "You specified an invalid image."}, InvalidProviderRequest),
        (400, {"id": "bad_request", "message": "size is required"}, InvalidProviderRequest),
        (500, {"id": "server_error", "message": "Server was unable to give you a response."}, TransientProviderError),
        (503, {"id": "service_unavailable", "message": "Service unavailable"}, TransientProviderError),
    ],
)
def test_answers_map_onto_error_classes_and_reason_codes(refusing_api, status, body, error_class):
    refusing_api.post(f"{API}/v2/droplets", status=status, json=body)
    driver = DigitalOceanDriver(owner_tag=OWNER, token="test-token")

    with pytest.raises(error_class) as raised:
        driver.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))

    assert type(raised.value) is error_class
    assert body["message"] in str(raised.value)
    if error_class is TransientProviderError:
        assert not isinstance(raised.value, PermanentProviderError)
        assert raised.value.reason_code == "provider_error"
    else:
        assert raised.value.reason_code == error_class.reason_code != "provider_error"
