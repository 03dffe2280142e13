"""The shared, read-only catalog: `/api/v1/provider/`, `/region/`, `/az/`, `/nodetype/`, and its seeding."""

from io import StringIO

import pytest
from django.core.management import call_command

from nodeclusters.catalog import CATALOG
from nodeclusters.models import AvailabilityZone, NodeType, Provider, Region
from tests import factories
from tests.api.helpers import assert_error

pytestmark = pytest.mark.django_db

DO_REGIONS = ["ams1", "ams2", "ams3", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "sfo1", "sgp1"]
# Tutum's 2015 sizes (aliases of today's) and today's, smallest memory first, then by name.
DO_TYPES_BY_MEMORY = [
    name
    for name, (_, _, memory, _) in sorted(CATALOG["digitalocean"][2].items(), key=lambda item: (item[1][2], item[0]))
]
AWS_ZONE_COUNT = sum(len(zones) for _, zones in CATALOG["aws"][1].values())
LIST_URLS = ["/api/v1/provider/", "/api/v1/region/", "/api/v1/az/", "/api/v1/nodetype/"]
DETAIL_URLS = [
    "/api/v1/provider/digitalocean/",
    "/api/v1/region/digitalocean/lon1/",
    "/api/v1/az/aws/us-east-1/us-east-1a/",
    "/api/v1/nodetype/digitalocean/1gb/",
]


def objects(client, url: str, **params) -> list[dict]:
    response = client.get(url, {"limit": 1000, **params})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["meta"]["total_count"] == len(body["objects"])
    return body["objects"]


def names(client, url: str, **params) -> list[str]:
    return [item["name"] for item in objects(client, url, **params)]


def catalog_counts() -> dict[str, int]:
    return {
        "providers": Provider.objects.count(),
        "regions": Region.objects.count(),
        "zones": AvailabilityZone.objects.count(),
        "node_types": NodeType.objects.count(),
        "type_regions": NodeType.regions.through.objects.count(),
        "type_zones": NodeType.availability_zones.through.objects.count(),
    }


# --- exact representations ----------------------------------------------------------------------------------------


def test_provider_detail(client):
    response = client.get("/api/v1/provider/digitalocean/")

    assert response.status_code == 200
    assert response.json() == {
        "available": True,
        "label": "Digital Ocean",
        "name": "digitalocean",
        "regions": [f"/api/v1/region/digitalocean/{name}/" for name in DO_REGIONS],
        "resource_uri": "/api/v1/provider/digitalocean/",
    }


def test_region_detail_lists_its_node_types_smallest_first(client):
    response = client.get("/api/v1/region/digitalocean/lon1/")

    assert response.status_code == 200
    assert response.json() == {
        "availability_zones": [],
        "available": True,
        "label": "London 1",
        "name": "lon1",
        "node_types": [f"/api/v1/nodetype/digitalocean/{name}/" for name in DO_TYPES_BY_MEMORY],
        "provider": "/api/v1/provider/digitalocean/",
        "resource_uri": "/api/v1/region/digitalocean/lon1/",
    }


def test_aws_region_detail_lists_its_availability_zones(client):
    body = client.get("/api/v1/region/aws/us-west-1/").json()

    assert body["availability_zones"] == [
        "/api/v1/az/aws/us-west-1/us-west-1a/",
        "/api/v1/az/aws/us-west-1/us-west-1c/",
    ]
    assert body["provider"] == "/api/v1/provider/aws/"
    assert "/api/v1/nodetype/aws/t2.micro/" in body["node_types"]


def test_availability_zone_detail(client):
    response = client.get("/api/v1/az/aws/us-east-1/us-east-1a/")

    assert response.status_code == 200
    assert response.json() == {
        "available": True,
        "name": "us-east-1a",
        "region": "/api/v1/region/aws/us-east-1/",
        "resource_uri": "/api/v1/az/aws/us-east-1/us-east-1a/",
    }


def test_node_type_detail(client):
    response = client.get("/api/v1/nodetype/digitalocean/1gb/")

    assert response.status_code == 200
    assert response.json() == {
        "availability_zones": [],
        "available": True,
        "label": "1GB",
        "name": "1gb",
        "provider": "/api/v1/provider/digitalocean/",
        "regions": [f"/api/v1/region/digitalocean/{name}/" for name in DO_REGIONS],
        "resource_uri": "/api/v1/nodetype/digitalocean/1gb/",
        # Tutum's name for today's size: a cluster of 1gb nodes is created as s-1vcpu-1gb droplets.
        "alias_of": "/api/v1/nodetype/digitalocean/s-1vcpu-1gb/",
        "price_monthly": None,
        "price_hourly": None,
    }


def test_availability_flags_are_rendered(client):
    Region.objects.filter(provider__name="digitalocean", name="lon1").update(available=False)
    NodeType.objects.filter(provider__name="digitalocean", name="1gb").update(available=False)

    assert client.get("/api/v1/region/digitalocean/lon1/").json()["available"] is False
    assert client.get("/api/v1/nodetype/digitalocean/1gb/").json()["available"] is False
    assert client.get("/api/v1/region/digitalocean/ams2/").json()["available"] is True


@pytest.mark.parametrize("url", LIST_URLS)
def test_every_list_item_renders_like_its_detail(client, url):
    items = objects(client, url)

    assert items
    for item in items:
        assert item["resource_uri"].endswith("/")
        assert client.get(item["resource_uri"]).json() == item


def test_list_counts_match_the_seeded_catalog(client):
    assert names(client, "/api/v1/provider/") == ["aws", "digitalocean", "local"]
    assert len(objects(client, "/api/v1/region/")) == sum(len(regions) for _, regions, _ in CATALOG.values())
    assert len(objects(client, "/api/v1/az/")) == AWS_ZONE_COUNT
    assert len(objects(client, "/api/v1/nodetype/")) == sum(len(types) for _, _, types in CATALOG.values())


# --- filters ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        ("/api/v1/provider/", {"name": "aws"}, ["aws"]),
        ("/api/v1/provider/", {"name": "nocloud"}, []),
        ("/api/v1/region/", {"name": "lon1"}, ["lon1"]),
        ("/api/v1/region/", {"provider": "/api/v1/provider/digitalocean/"}, DO_REGIONS),
        ("/api/v1/region/", {"provider": "/api/v1/provider/local/", "name": "local"}, ["local"]),
        ("/api/v1/az/", {"region": "/api/v1/region/aws/us-west-1/"}, ["us-west-1a", "us-west-1c"]),
        ("/api/v1/az/", {"name": "eu-west-1b"}, ["eu-west-1b"]),
        ("/api/v1/az/", {"region": "/api/v1/region/digitalocean/lon1/"}, []),
        ("/api/v1/nodetype/", {"name": "1gb"}, ["1gb"]),
        ("/api/v1/nodetype/", {"regions": "/api/v1/region/local/local/"}, ["large", "medium", "small"]),
    ],
)
def test_filters(client, url, params, expected):
    assert sorted(names(client, url, **params)) == sorted(expected)


def test_node_type_filters_follow_the_region_and_zone_offers(client):
    lon1 = factories.region("digitalocean", "lon1")
    factories.node_type("digitalocean", "1gb").regions.remove(lon1)
    zone = AvailabilityZone.objects.get(region__name="us-east-1", name="us-east-1a")
    factories.node_type("aws", "r3.large").availability_zones.remove(zone)

    in_lon1 = names(client, "/api/v1/nodetype/", regions="/api/v1/region/digitalocean/lon1/")
    in_zone = names(client, "/api/v1/nodetype/", availability_zones="/api/v1/az/aws/us-east-1/us-east-1a/")

    assert sorted(in_lon1) == sorted(set(DO_TYPES_BY_MEMORY) - {"1gb"})
    assert sorted(in_zone) == sorted(set(CATALOG["aws"][2]) - {"r3.large"})


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/api/v1/region/", {"provider": "digitalocean"}),
        ("/api/v1/az/", {"region": "/api/v1/provider/aws/"}),
        ("/api/v1/nodetype/", {"regions": "lon1"}),
        ("/api/v1/nodetype/", {"availability_zones": "/api/v1/region/aws/us-east-1/"}),
    ],
)
def test_malformed_uri_filters_are_a_400(client, url, params):
    body = assert_error(client.get(url, params), 400)

    assert set(params) <= set(body["errors"])


# --- errors, methods, sharing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/provider/nocloud/",
        "/api/v1/region/digitalocean/mars1/",
        "/api/v1/region/aws/lon1/",
        "/api/v1/az/aws/us-east-1/us-east-1z/",
        "/api/v1/az/aws/us-west-1/us-east-1a/",
        "/api/v1/nodetype/aws/1gb/",
    ],
)
def test_unknown_catalog_object_is_a_json_404(client, url):
    assert_error(client.get(url), 404)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url", LIST_URLS + DETAIL_URLS)
def test_catalog_is_read_only(client, url, method):
    before = catalog_counts()

    response = getattr(client, method)(url, {"name": "x", "label": "X", "available": False}, format="json")

    assert_error(response, 405)
    assert catalog_counts() == before
    assert not Provider.objects.filter(available=False).exists()
    assert not Region.objects.filter(available=False).exists()


def test_catalog_is_shared_between_users(client, other_client):
    for url in LIST_URLS + DETAIL_URLS:
        mine, theirs = client.get(url, {"limit": 1000}), other_client.get(url, {"limit": 1000})
        assert (mine.status_code, theirs.status_code) == (200, 200)
        assert mine.json() == theirs.json()


@pytest.mark.parametrize("url", LIST_URLS + DETAIL_URLS)
def test_catalog_needs_credentials(anonymous_client, url):
    assert_error(anonymous_client.get(url), 401)


# --- seeding ------------------------------------------------------------------------------------------------------


def test_loadcatalog_is_idempotent_and_keeps_operator_availability_flags(catalog):
    Region.objects.filter(provider__name="aws", name="sa-east-1").update(available=False)
    Provider.objects.filter(name="local").update(label="Renamed by hand")
    before = catalog_counts()

    outputs = []
    for _ in range(2):
        stdout = StringIO()
        call_command("loadcatalog", stdout=stdout)
        outputs.append(stdout.getvalue())

    assert catalog_counts() == before
    assert before["providers"] == len(CATALOG)
    assert before["zones"] == AWS_ZONE_COUNT
    assert outputs[0] == outputs[1]
    assert f"{before['providers']} providers" in outputs[0]
    assert Region.objects.get(provider__name="aws", name="sa-east-1").available is False
    assert Provider.objects.get(name="local").label == CATALOG["local"][0]
