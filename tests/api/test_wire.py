"""Tutum's wire details: auth and API keys, tenancy, pagination, request bodies, paths, throttling, list filters."""

import base64
import hashlib
import json
import string
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from nodeclusters import services
from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, ApiKey, Node, NodeCluster
from tests import factories
from tests.api.helpers import (
    action_url,
    assert_error,
    cluster_url,
    header_action,
    node_url,
    set_cluster_state,
)

pytestmark = pytest.mark.django_db

AUTH_URL = "/api/v1/auth/"
CLUSTERS = "/api/v1/nodecluster/"
NODES = "/api/v1/node/"
ACTIONS = "/api/v1/action/"
CREATE_BODY = {
    "name": "web",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
}


def with_header(value: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def basic(username: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()


def db_state() -> dict:
    """Every domain row, to show a refused request changed nothing."""
    return {
        "clusters": list(NodeCluster.objects.order_by("pk").values()),
        "nodes": list(Node.objects.order_by("pk").values()),
        "actions": list(Action.objects.order_by("pk").values()),
    }


# --- authentication -----------------------------------------------------------------------------------------------


def test_apikey_header_authenticates(client, user):
    response = client.get(AUTH_URL)

    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_basic_header_with_the_key_as_password_authenticates(user, api_key, catalog):
    response = with_header(basic("alice", api_key)).get(CLUSTERS)

    assert response.status_code == 200
    assert response.json()["meta"]["total_count"] == 0


def test_auth_endpoint_answers_with_the_callers_username(user, api_key, other_client, catalog):
    assert with_header(basic("alice", api_key)).get(AUTH_URL).json()["username"] == "alice"
    assert other_client.get(AUTH_URL).json()["username"] == "mallory"


def test_missing_credentials_are_a_401_with_www_authenticate(anonymous_client):
    response = anonymous_client.get(CLUSTERS)

    assert_error(response, 401)
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header",
    [
        "ApiKey alice:0123456789abcdef0123456789abcdef01234567",
        "ApiKey alice:short",
        "ApiKey alice",
        "ApiKey :",
        "ApiKey",
        "Basic not-base64!!",
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer abcdef",
        "Token alice:abc",
    ],
)
def test_bad_credentials_are_a_json_401(user, api_key, catalog, header):
    response = with_header(header).get(CLUSTERS)

    assert_error(response, 401)
    assert response["WWW-Authenticate"]


def test_nul_bytes_after_the_key_prefix_are_a_401(user, api_key, catalog):
    assert_error(with_header(basic("alice", api_key[:10] + "\u0000" * 4)).get(CLUSTERS), 401)
    assert_error(with_header(basic("al\u0000ice", api_key)).get(CLUSTERS), 401)


def test_nul_bytes_in_the_key_prefix_are_a_401(user, api_key, catalog):
    assert_error(with_header(basic("alice", "\u0000" * 12)).get(CLUSTERS), 401)


def test_wrong_key_for_a_real_user_is_a_401(user, api_key, catalog):
    wrong = api_key[:-1] + ("0" if api_key[-1] != "0" else "1")

    assert_error(with_header(f"ApiKey alice:{wrong}").get(CLUSTERS), 401)
    assert_error(with_header(basic("alice", wrong)).get(CLUSTERS), 401)


def test_revoked_key_is_a_401(user, api_key, catalog):
    client = factories.api_client(user, api_key)
    assert client.get(AUTH_URL).status_code == 200

    services.api_key_revoke(api_key=ApiKey.objects.get(user=user))

    assert_error(client.get(AUTH_URL), 401)


def test_another_users_key_with_my_username_is_a_401(user, other_user, catalog):
    mallory_key = factories.make_api_key(other_user)

    assert_error(with_header(f"ApiKey alice:{mallory_key}").get(AUTH_URL), 401)
    assert_error(with_header(basic("alice", mallory_key)).get(AUTH_URL), 401)
    assert with_header(f"ApiKey mallory:{mallory_key}").get(AUTH_URL).json()["username"] == "mallory"


def test_inactive_user_is_a_401(client, user):
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)

    assert_error(client.get(AUTH_URL), 401)


def test_api_keys_are_stored_as_a_sha256_digest_only(user, api_key):
    for row in ApiKey.objects.filter(user=user).values():
        for column, value in row.items():
            assert api_key not in str(value), column
        assert row["digest"] == hashlib.sha256(api_key.encode()).hexdigest()
        assert len(row["digest"]) == 64
        assert set(row["digest"]) <= set(string.hexdigits.lower())


def test_createapikey_prints_only_a_key_that_authenticates(catalog):
    stdout = StringIO()

    call_command("createapikey", "bob", "--create-user", stdout=stdout)

    output = stdout.getvalue()
    key = output.strip()
    assert output == key + "\n"
    assert key and " " not in key
    bob = get_user_model().objects.get(username="bob")
    assert ApiKey.objects.filter(user=bob).count() == 1
    assert factories.api_client(bob, key).get(AUTH_URL).json()["username"] == "bob"


def test_createapikey_refuses_a_missing_user_without_create_user(db):
    with pytest.raises(CommandError, match="--create-user"):
        call_command("createapikey", "carol", stdout=StringIO())

    assert not get_user_model().objects.filter(username="carol").exists()
    assert not ApiKey.objects.exists()


def test_createapikey_adds_a_key_for_an_existing_user(user, api_key, catalog):
    stdout = StringIO()

    call_command("createapikey", "alice", stdout=stdout)

    new_key = stdout.getvalue().strip()
    assert new_key != api_key
    assert ApiKey.objects.filter(user=user).count() == 2
    for key in (api_key, new_key):
        assert factories.api_client(user, key).get(AUTH_URL).status_code == 200


# --- tenancy ------------------------------------------------------------------------------------------------------


@pytest.fixture
def alices_things(user, catalog):
    """Alice's cluster (deploying), a deployed node, the open deploy action and a failed, retryable scale action."""
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    node = factories.make_node(cluster)
    failed = Action.objects.create(
        owner=user,
        action="Node Cluster Scale",
        object_uri=cluster_url(cluster),
        node_cluster=cluster,
        state=ActionState.FAILED,
        start_date=cluster.current_action.start_date,
        can_be_retried=True,
        target_num_nodes=2,
    )
    return {"cluster": cluster, "node": node, "deploy": cluster.current_action, "failed": failed}


TENANCY_REQUESTS = [
    ("get", "cluster", ""),
    ("patch", "cluster", ""),
    ("delete", "cluster", ""),
    ("post", "cluster", "deploy/"),
    ("post", "cluster", "docker-upgrade/"),
    ("get", "node", ""),
    ("patch", "node", ""),
    ("delete", "node", ""),
    ("post", "node", "health-check/"),
    ("post", "node", "docker-upgrade/"),
    ("get", "deploy", ""),
    ("post", "deploy", "cancel/"),
    ("get", "failed", ""),
    ("post", "failed", "retry/"),
]


@pytest.mark.parametrize(("method", "target", "suffix"), TENANCY_REQUESTS)
def test_another_users_objects_are_not_found(
    other_client, alices_things, method, target, suffix, django_capture_on_commit_callbacks
):
    url_of = {"cluster": cluster_url, "node": node_url, "deploy": action_url, "failed": action_url}[target]
    url = url_of(alices_things[target], suffix)
    body = {}
    if method == "patch":
        body = {"target_num_nodes": 5, "nickname": "mine"} if target == "cluster" else {"nickname": "mine"}
    before = db_state()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = getattr(other_client, method)(url, body, format="json")

    assert_error(response, 404)
    assert db_state() == before
    assert callbacks == []


def test_the_owner_can_reach_every_object_of_the_tenancy_matrix(client, alices_things):
    for target, url_of in (
        ("cluster", cluster_url),
        ("node", node_url),
        ("deploy", action_url),
        ("failed", action_url),
    ):
        assert client.get(url_of(alices_things[target])).status_code == 200


@pytest.mark.parametrize("url", [CLUSTERS, NODES, ACTIONS])
def test_lists_show_only_the_callers_objects(client, other_client, other_user, alices_things, url):
    mallorys = factories.make_cluster(other_user)
    factories.make_node(mallorys)

    mine = client.get(url, {"limit": 1000}).json()["objects"]
    theirs = other_client.get(url, {"limit": 1000}).json()["objects"]

    assert mine
    assert theirs
    assert not {item["uuid"] for item in mine} & {item["uuid"] for item in theirs}
    owners = {
        CLUSTERS: NodeCluster.objects.filter(owner__username="mallory"),
        NODES: Node.objects.filter(owner__username="mallory"),
        ACTIONS: Action.objects.filter(owner__username="mallory"),
    }[url]
    assert {item["uuid"] for item in theirs} == {str(uuid) for uuid in owners.values_list("uuid", flat=True)}


def test_filters_do_not_reach_another_users_objects(other_client, alices_things):
    cluster, node = alices_things["cluster"], alices_things["node"]

    assert other_client.get(CLUSTERS, {"uuid": str(cluster.uuid)}).json()["objects"] == []
    assert other_client.get(NODES, {"node_cluster": cluster_url(cluster)}).json()["objects"] == []
    related = {"object": cluster_url(cluster), "include_related": "true"}
    assert other_client.get(ACTIONS, related).json()["objects"] == []
    assert other_client.get(ACTIONS, {"object": node_url(node)}).json()["objects"] == []


# --- pagination ---------------------------------------------------------------------------------------------------


def make_clusters(user, count: int, **options) -> list[NodeCluster]:
    return [factories.make_cluster(user, name=f"c{index}", **options) for index in range(count)]


def walk(client, url: str, params: dict) -> list[dict]:
    """Every object of a list, following `next` links from the first page."""
    response = client.get(url, params)
    seen = []
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        seen.extend(body["objects"])
        if body["meta"]["next"] is None:
            return seen
        assert body["meta"]["next"].startswith("/api/v1/")
        response = client.get(body["meta"]["next"])


def test_meta_has_exactly_tastypies_keys_and_a_default_limit_of_25(client, user):
    clusters = make_clusters(user, 27)

    body = client.get(CLUSTERS).json()

    assert set(body) == {"meta", "objects"}
    assert set(body["meta"]) == {"limit", "next", "offset", "previous", "total_count"}
    assert body["meta"] | {"next": None} == {
        "limit": 25,
        "next": None,
        "offset": 0,
        "previous": None,
        "total_count": 27,
    }
    assert body["meta"]["next"] == "/api/v1/nodecluster/?limit=25&offset=25"
    assert len(body["objects"]) == 25
    assert {item["uuid"] for item in body["objects"]} < {str(cluster.uuid) for cluster in clusters}


def test_following_next_walks_every_page_once_and_keeps_filters(client, user):
    init = make_clusters(user, 11)
    for cluster in make_clusters(user, 4):
        set_cluster_state(cluster, NodeClusterState.DEPLOYED)

    seen = walk(client, CLUSTERS, {"state": "Init", "limit": 3})

    assert len(seen) == 11
    assert {item["uuid"] for item in seen} == {str(cluster.uuid) for cluster in init}
    second = client.get(CLUSTERS, {"state": "Init", "limit": 3}).json()["meta"]["next"]
    assert "state=Init" in second
    previous = client.get(second).json()["meta"]["previous"]
    assert previous.startswith("/api/v1/nodecluster/?")
    assert "state=Init" in previous
    assert "offset=0" in previous


def test_limit_and_offset_select_a_slice_of_the_full_list(client, user):
    make_clusters(user, 12)
    everything = [item["uuid"] for item in client.get(CLUSTERS, {"limit": 100}).json()["objects"]]

    body = client.get(CLUSTERS, {"limit": 4, "offset": 5}).json()

    assert [item["uuid"] for item in body["objects"]] == everything[5:9]
    assert (body["meta"]["limit"], body["meta"]["offset"], body["meta"]["total_count"]) == (4, 5, 12)
    assert body["meta"]["previous"] == "/api/v1/nodecluster/?limit=4&offset=1"
    assert body["meta"]["next"] == "/api/v1/nodecluster/?limit=4&offset=9"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": "abc"},
        {"limit": -5},
        {"offset": -1},
        {"offset": "x"},
        {"limit": "1.5"},
        {"offset": 2**70},  # past what OFFSET takes: a 400, not the database's overflow as a 500
        # Digits only, as the document's integer reads: Python's int() would also take these.
        {"limit": "+5"},
        {"limit": " 5"},
        {"offset": "1_0"},
        {"limit": "\u0665"},  # ARABIC-INDIC DIGIT FIVE
    ],
)
def test_bad_limit_or_offset_is_a_json_400(client, params):
    body = assert_error(client.get(CLUSTERS, params), 400)

    assert set(params) <= set(body["errors"])


def test_limit_above_the_maximum_is_clamped(client, user, settings):
    settings.API_MAX_PAGE_SIZE = 5
    make_clusters(user, 7)

    body = client.get(CLUSTERS, {"limit": 50}).json()

    assert body["meta"]["limit"] == 5
    assert len(body["objects"]) == 5
    assert body["meta"]["next"] == "/api/v1/nodecluster/?limit=5&offset=5"


def test_a_filtered_page_counts_only_what_matches_at_every_offset(client, user):
    make_clusters(user, 5, region_name="lon1")
    make_clusters(user, 7, region_name="nyc3")
    nyc3 = "/api/v1/region/digitalocean/nyc3/"

    pages = [client.get(CLUSTERS, {"region": nyc3, "limit": 3, "offset": offset}).json() for offset in (0, 6, 9)]

    assert [page["meta"]["total_count"] for page in pages] == [7, 7, 7]
    assert [len(page["objects"]) for page in pages] == [3, 1, 0]
    assert {item["region"] for page in pages for item in page["objects"]} == {nyc3}


def test_offset_beyond_the_end_is_an_empty_page(client, user):
    make_clusters(user, 3)

    body = client.get(CLUSTERS, {"offset": 10}).json()

    assert body["objects"] == []
    assert body["meta"]["total_count"] == 3
    assert body["meta"]["next"] is None


# --- request bodies -----------------------------------------------------------------------------------------------


def test_json_body_without_content_type_is_read_as_json(client, user):
    raw = json.dumps(CREATE_BODY).encode()

    response = client.generic("POST", CLUSTERS, data=raw, content_type="")

    assert response.status_code == 201, response.content
    cluster = NodeCluster.objects.get(owner=user)
    assert cluster.name == "web"
    assert json.loads(header_action(response).body) == CREATE_BODY


def test_json_body_without_content_type_needs_the_api_middleware(client, user, settings):
    """The control for the test above: the request really arrives without a Content-Type."""
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if not name.endswith("ApiRequestMiddleware")]

    response = client.generic("POST", CLUSTERS, data=json.dumps(CREATE_BODY).encode(), content_type="")

    assert_error(response, 415)
    assert not NodeCluster.objects.exists()


def test_patch_without_content_type_is_read_as_json(client, user):
    cluster = factories.make_cluster(user)

    response = client.generic("PATCH", cluster_url(cluster), data=b'{"nickname": "n"}', content_type="")

    assert response.status_code == 200, response.content
    cluster.refresh_from_db()
    assert cluster.nickname == "n"


@pytest.mark.parametrize("content_type", ["application/json", ""])
def test_empty_object_bodies_are_accepted_on_get_delete_and_deploy(client, user, content_type):
    deploying = factories.make_cluster(user, name="deploy-me")
    deleting = factories.make_cluster(user, name="delete-me")

    got = client.generic("GET", cluster_url(deploying), data=b"{}", content_type=content_type)
    deployed = client.generic("POST", cluster_url(deploying, "deploy/"), data=b"{}", content_type=content_type)
    deleted = client.generic("DELETE", cluster_url(deleting), data=b"{}", content_type=content_type)

    assert (got.status_code, deployed.status_code, deleted.status_code) == (200, 202, 202)
    deploying.refresh_from_db()
    deleting.refresh_from_db()
    assert (deploying.state, deleting.state) == (NodeClusterState.DEPLOYING, NodeClusterState.TERMINATING)


@pytest.mark.parametrize("content_type", ["application/json", ""])
@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_empty_body_on_an_action_post_is_accepted(client, user, content_type, body):
    cluster = factories.deploy(factories.make_cluster(user))

    response = client.generic(
        "POST", action_url(cluster.current_action, "cancel/"), data=body, content_type=content_type
    )

    assert response.status_code == 202, response.content
    assert Action.objects.get(pk=cluster.current_action.pk).state == ActionState.CANCELING


def test_post_without_any_body_is_accepted(client, user):
    cluster = factories.make_cluster(user)

    response = client.post(cluster_url(cluster, "deploy/"))

    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/x-www-form-urlencoded", b"name=web&region=/api/v1/region/digitalocean/lon1/"),
        ("text/plain", json.dumps(CREATE_BODY).encode()),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nweb\r\n--xyz--',
        ),
        ("application/xml", b"<cluster/>"),
    ],
)
def test_non_json_bodies_are_a_json_415(client, user, content_type, raw):
    cluster = factories.make_cluster(user)
    before = db_state()

    created = client.generic("POST", CLUSTERS, data=raw, content_type=content_type)
    patched = client.generic("PATCH", cluster_url(cluster), data=raw, content_type=content_type)

    assert "JSON" in assert_error(created, 415)["error"]
    assert_error(patched, 415)
    assert db_state() == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "web",',
        b"{'name': 'web'}",
        b"\xff\xfe{}",
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'["web"]',
        b"42",
        b"null",
        b'"web"',
    ],
    ids=["truncated", "single-quotes", "not-utf8", "deep-array", "deep-object", "array", "number", "null", "string"],
)
def test_bodies_that_are_not_a_json_object_are_a_json_400(client, user, raw):
    cluster = factories.make_cluster(user)
    before = db_state()

    created = client.generic("POST", CLUSTERS, data=raw, content_type="application/json")
    patched = client.generic("PATCH", cluster_url(cluster), data=raw, content_type="application/json")

    assert_error(created, 400)
    assert_error(patched, 400)
    assert db_state() == before


def test_body_over_the_size_limit_is_a_json_413(client, user, settings):
    raw = json.dumps(CREATE_BODY | {"nickname": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}).encode()

    body = assert_error(client.generic("POST", CLUSTERS, data=raw, content_type="application/json"), 413)

    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in body["error"]
    assert not NodeCluster.objects.exists()


@pytest.mark.parametrize("field", ["name", "nickname"])
def test_nul_byte_in_a_string_is_a_400(client, field):
    body = assert_error(client.post(CLUSTERS, CREATE_BODY | {field: "a\u0000b"}, format="json"), 400)

    assert field in body["errors"]
    assert not NodeCluster.objects.exists()


def test_unicode_name_round_trips(client):
    name = "clúster-東京-🚀"

    response = client.post(CLUSTERS, CREATE_BODY | {"name": name, "tags": ["ñandú"]}, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["name"], response.json()["tags"]) == (name, [{"name": "ñandú"}])
    cluster = NodeCluster.objects.get()
    assert (cluster.name, cluster.nickname) == (name, name)
    assert client.get(cluster_url(cluster)).json()["name"] == name


# --- paths and methods --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope/",
        "/api/v2/",
        "/api/",
        "/api/v1/nodecluster/not-a-uuid/",
        "/api/v1/nodecluster/5516df0b-721e-4470-b350-741ff22e63a0/explode/",
        "/api/v1/service/",
    ],
)
def test_unknown_paths_under_api_are_a_json_404(client, path):
    for method in ("get", "post", "delete"):
        assert_error(getattr(client, method)(path), 404)


def test_unknown_paths_do_not_need_credentials_to_be_a_json_404(anonymous_client):
    assert_error(anonymous_client.get("/api/v2/nodecluster/"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "cluster"), ("post", "cluster"), ("put", CLUSTERS), ("delete", CLUSTERS), ("get", "deploy/")],
)
def test_methods_a_resource_lacks_are_a_json_405(client, user, method, path):
    cluster = factories.make_cluster(user)
    url = {"cluster": cluster_url(cluster), "deploy/": cluster_url(cluster, "deploy/")}.get(path, path)
    before = db_state()

    assert_error(getattr(client, method)(url, CREATE_BODY, format="json"), 405)

    assert db_state() == before


def test_trailing_slash_is_optional_on_input(client):
    created = client.post(CLUSTERS.rstrip("/"), CREATE_BODY, format="json")
    assert created.status_code == 201, created.content
    uri = created.json()["resource_uri"]

    assert client.get(uri.rstrip("/")).json()["uuid"] == created.json()["uuid"]
    assert client.get(CLUSTERS.rstrip("/")).json()["meta"]["total_count"] == 1
    assert client.patch(uri.rstrip("/"), {"nickname": "n"}, format="json").status_code == 200
    assert client.post(uri + "deploy").status_code == 202
    assert NodeCluster.objects.get().state == NodeClusterState.DEPLOYING


# --- throttling ---------------------------------------------------------------------------------------------------


@pytest.fixture
def throttled(settings):
    settings.API_THROTTLE_RATE = "3/min"
    cache.clear()
    yield
    cache.clear()


def test_the_fourth_request_in_a_minute_is_a_json_429(client, other_client, throttled):
    statuses = [client.get(CLUSTERS).status_code for _ in range(3)]
    response = client.get(CLUSTERS)

    assert statuses == [200, 200, 200]
    assert_error(response, 429)
    assert 0 < int(response["Retry-After"]) <= 60
    assert other_client.get(CLUSTERS).status_code == 200


def test_throttled_writes_change_nothing(client, throttled):
    for _ in range(3):
        client.get(CLUSTERS)

    assert_error(client.post(CLUSTERS, CREATE_BODY, format="json"), 429)

    assert not NodeCluster.objects.exists()


def test_failed_authentication_is_throttled_per_client_address(user, api_key, throttled):
    guesser = with_header("ApiKey alice:0123456789abcdef0123456789abcdef01234567")

    statuses = [guesser.get(CLUSTERS).status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]


# --- list filters -------------------------------------------------------------------------------------------------


def listed(client, url: str, **params) -> set[str]:
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    return {item["uuid"] for item in response.json()["objects"]}


@pytest.fixture
def clusters(user, catalog):
    web = factories.make_cluster(user, name="web")
    db = set_cluster_state(factories.make_cluster(user, name="db", type_name="2gb"), NodeClusterState.DEPLOYED)
    aws = factories.make_cluster(user, name="web", provider="aws", region_name="us-east-1", type_name="t2.micro")
    return {"web": web, "db": db, "aws": aws}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "web"}, {"web", "aws"}),
        ({"name": "nothing"}, set()),
        ({"state": "Deployed"}, {"db"}),
        ({"state": "Init"}, {"web", "aws"}),
        ({"region": "/api/v1/region/digitalocean/lon1/"}, {"web", "db"}),
        ({"region": "/api/v1/region/aws/us-east-1"}, {"aws"}),
        ({"node_type": "/api/v1/nodetype/digitalocean/2gb/"}, {"db"}),
        ({"node_type": "http://testserver/api/v1/nodetype/aws/t2.micro/", "name": "web"}, {"aws"}),
    ],
)
def test_nodecluster_filters(client, clusters, params, expected):
    assert listed(client, CLUSTERS, **params) == {str(clusters[key].uuid) for key in expected}


def test_nodecluster_uuid_filters(client, clusters):
    target = clusters["db"]
    text = str(target.uuid)

    assert listed(client, CLUSTERS, uuid=text) == {text}
    assert listed(client, CLUSTERS, uuid__startswith=text[:13]) == {text}
    assert listed(client, CLUSTERS, uuid__startswith=text[:13].upper()) == {text}
    assert listed(client, CLUSTERS, uuid__startswith=text) == {text}


@pytest.mark.parametrize(
    "params",
    [
        {"state": "Exploded"},
        {"state": "deployed"},
        {"region": "lon1"},
        {"region": "/api/v1/nodetype/digitalocean/1gb/"},
        {"node_type": "/api/v1/region/digitalocean/lon1/"},
        {"uuid": "not-a-uuid"},
    ],
)
def test_bad_nodecluster_filter_values_are_a_json_400(client, clusters, params):
    body = assert_error(client.get(CLUSTERS, params), 400)

    assert set(params) <= set(body["errors"])


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (CLUSTERS, "name"),
        (CLUSTERS, "region"),
        (NODES, "docker_version"),
        (ACTIONS, "object"),
        (ACTIONS, "start_date__gte"),
        ("/api/v1/region/", "name"),
    ],
)
def test_nul_byte_in_a_filter_value_is_a_json_400(client, clusters, url, field):
    body = assert_error(client.get(url, {field: "a\u0000b"}), 400)

    assert field in body["errors"]


@pytest.fixture
def nodes(clusters):
    web, db, aws = clusters["web"], clusters["db"], clusters["aws"]
    return {
        "web-up": factories.make_node(web, docker_version="1.9.1"),
        "web-new": factories.make_node(web, state=NodeState.DEPLOYING),
        "db-up": factories.make_node(db, docker_version="1.8.0"),
        "aws-gone": factories.make_node(aws, state=NodeState.TERMINATED),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "Deployed"}, {"web-up", "db-up"}),
        ({"state": "Deploying"}, {"web-new"}),
        ({"state": "Terminated"}, {"aws-gone"}),
        ({"node_type": "/api/v1/nodetype/digitalocean/1gb/"}, {"web-up", "web-new"}),
        ({"region": "/api/v1/region/aws/us-east-1/"}, {"aws-gone"}),
        ({"region": "/api/v1/region/digitalocean/lon1/"}, {"web-up", "web-new", "db-up"}),
        ({"docker_version": "1.8.0"}, {"db-up"}),
        ({"docker_version": "1.9.1", "state": "Deployed"}, {"web-up"}),
    ],
)
def test_node_filters(client, nodes, params, expected):
    assert listed(client, NODES, **params) == {str(nodes[key].uuid) for key in expected}


def test_node_cluster_and_uuid_filters(client, clusters, nodes):
    up = str(nodes["web-up"].uuid)

    assert listed(client, NODES, node_cluster=cluster_url(clusters["web"])) == {
        up,
        str(nodes["web-new"].uuid),
    }
    assert listed(client, NODES, node_cluster=cluster_url(clusters["db"])) == {str(nodes["db-up"].uuid)}
    assert listed(client, NODES, uuid=up) == {up}
    assert listed(client, NODES, uuid__startswith=up[:10]) == {up}


@pytest.mark.parametrize(
    "params",
    [
        {"state": "Exploded"},
        {"node_cluster": "/api/v1/nodecluster/not-a-uuid/"},
        {"node_cluster": "/api/v1/node/5516df0b-721e-4470-b350-741ff22e63a0/"},
        {"region": "us-east-1"},
        {"node_type": "t2.micro"},
        {"uuid": "42"},
    ],
)
def test_bad_node_filter_values_are_a_json_400(client, nodes, params):
    body = assert_error(client.get(NODES, params), 400)

    assert set(params) <= set(body["errors"])
