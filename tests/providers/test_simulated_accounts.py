"""The simulated cloud's accounts, catalogs and node limit: what `make run` offers without a cloud account."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nodeclusters.catalog import LOCAL_TYPES
from providers.base import AuthFailed, InvalidProviderRequest, QuotaExceeded
from providers.simulated import SimulatedDriver
from tests.providers.conftest import OWNER, SIMULATED_REGION, make_spec

pytestmark = pytest.mark.django_db


def _driver(provider_name: str = "local", **options) -> SimulatedDriver:
    return SimulatedDriver(**{"owner_tag": OWNER, "provider_name": provider_name, "boot_seconds": 0, **options})


@pytest.mark.parametrize("token", ["", "   ", "invalid", "invalid-token-1234"])
def test_empty_and_invalid_tokens_are_refused_like_a_401(token):
    driver = _driver("digitalocean", credentials={"token": token})

    with pytest.raises(AuthFailed, match="HTTP 401: Unauthorized: Unable to authenticate you"):
        driver.verify_account()
    with pytest.raises(AuthFailed):
        driver.list_nodes(region=SIMULATED_REGION)


def test_any_other_token_is_an_account_of_its_own_named_by_its_last_characters():
    first = _driver("digitalocean", credentials={"token": "dop_v1_alice_9f3c"}, node_limit=10).verify_account()
    again = _driver("digitalocean", credentials={"token": "dop_v1_alice_9f3c"}).verify_account()
    other = _driver("digitalocean", credentials={"token": "dop_v1_bob_77aa"}).verify_account()

    assert first.account_id == again.account_id != other.account_id
    assert first.label.endswith("9f3c") and "dop_v1_alice" not in first.label
    assert first.limits == {"node_limit": 10}
    assert _driver("digitalocean").verify_account().account_id == "shared"


def test_the_digitalocean_catalog_has_todays_sizes_and_prices():
    catalog = _driver("digitalocean").fetch_catalog()

    regions = {region.name: region for region in catalog.regions}
    sizes = {size.name: size for size in catalog.node_types}
    assert {"lon1", "nyc3", "ams3", "fra1", "sgp1"} <= set(regions)
    assert {"s-1vcpu-1gb", "s-2vcpu-4gb", "s-4vcpu-8gb"} <= set(sizes)
    assert not {"512mb", "1gb"} & set(sizes)  # Tutum's 2015 names are the catalog sync's aliases, not sizes
    small = sizes["s-1vcpu-1gb"]
    assert (small.cpu, small.memory_mb, small.disk_gb, small.price_monthly) == (1, 1024, 25, Decimal("6.00"))
    assert "lon1" in small.regions
    assert all(
        set(size.regions) <= {name for name, region in regions.items() if region.available} for size in sizes.values()
    )


def test_the_aws_catalog_has_todays_types_with_zones():
    catalog = _driver("aws").fetch_catalog()

    regions = {region.name: region for region in catalog.regions}
    types = {node_type.name: node_type for node_type in catalog.node_types}
    assert {"t3.micro", "t3.small", "m7g.large", "c7g.large"} <= set(types)
    assert "us-east-1a" in regions["us-east-1"].zones
    assert types["m7g.large"].cpu == 2 and types["m7g.large"].memory_mb == 8192
    assert types["t3.micro"].price_monthly is None  # like EC2's API: no prices
    assert "us-east-1a" in types["t3.micro"].zones


def test_the_local_catalog_is_the_seeded_one():
    catalog = _driver("local").fetch_catalog()

    assert [region.name for region in catalog.regions] == ["local"]
    assert {node_type.name: (node_type.cpu, node_type.memory_mb) for node_type in catalog.node_types} == {
        name: (cpu, memory) for name, (_, cpu, memory, _) in LOCAL_TYPES.items()
    }


def test_a_provider_without_a_catalog_says_so():
    with pytest.raises(InvalidProviderRequest, match="no catalog for provider 'softlayer'"):
        _driver("softlayer").fetch_catalog()


def test_the_node_limit_refuses_creates_past_it_per_account():
    alice = _driver(credentials={"token": "alice"}, node_limit=2)
    bob = _driver(credentials={"token": "bob"}, node_limit=2)
    first = alice.create_node(make_spec(region=SIMULATED_REGION, node_type="small"))
    alice.create_node(make_spec(region="elsewhere", node_type="small"))  # the limit is account-wide

    with pytest.raises(QuotaExceeded, match=r"exceed your instance limit \(2 of 2 in use\)") as raised:
        alice.create_node(make_spec(region=SIMULATED_REGION, node_type="small"))

    assert raised.value.reason_code == "quota_exceeded"
    quota = alice.get_quota(region=SIMULATED_REGION)
    assert (quota.unit, quota.limit, quota.in_use) == ("instances", 2, 2)
    # Another account has its own limit, and a destroyed instance frees its slot.
    bob.create_node(make_spec(region=SIMULATED_REGION, node_type="small"))
    alice.destroy_node(instance_id=first.instance_id, region=SIMULATED_REGION)
    alice.create_node(make_spec(region=SIMULATED_REGION, node_type="small"))


def test_at_the_limit_a_retried_create_still_gets_its_instance():
    driver = _driver(node_limit=1)
    spec = make_spec(region=SIMULATED_REGION, node_type="small")
    first = driver.create_node(spec)

    assert driver.create_node(spec).instance_id == first.instance_id


def test_no_limit_is_a_quota_without_a_limit():
    driver = _driver()
    driver.create_node(make_spec(region=SIMULATED_REGION, node_type="small"))

    quota = driver.get_quota(region=SIMULATED_REGION)

    assert (quota.limit, quota.in_use) == (None, 1)
