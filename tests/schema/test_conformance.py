"""The OpenAPI schema: valid, served with local docs, true to Tutum's wire format and to what every endpoint answers."""

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.http import JsonResponse
from django.test import Client
from openapi_spec_validator import validate as validate_openapi_document
from rest_framework.test import APIClient

from nodeclusters.api.serializers import ActionSerializer
from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from tests.schema.helpers import ResponseChecker, generate_openapi, operations
from tests.schema.world import World

pytestmark = pytest.mark.django_db

# Generated once at import: the operations parametrize the tests below.
OPENAPI = generate_openapi()
OPERATIONS = operations(OPENAPI)
CHECKER = ResponseChecker(OPENAPI)

NO_BODY = object()
CLUSTERS, CLUSTER = "/api/v1/nodecluster/", "/api/v1/nodecluster/{uuid}/"
NODES, NODE = "/api/v1/node/", "/api/v1/node/{uuid}/"
ACTIONS, ACTION = "/api/v1/action/", "/api/v1/action/{uuid}/"
ACTION_HEADER = "X-Tutum-Action-URI"
CREATE_BODY = {
    "name": "api",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
}
# The README's "Filters:" paragraph, resource by resource (plus limit/offset on every list).
README_FILTERS = {
    CLUSTERS: {"uuid", "uuid__startswith", "state", "name", "region", "node_type"},
    NODES: {"uuid", "uuid__startswith", "state", "node_cluster", "node_type", "region", "docker_version"},
    ACTIONS: {
        "uuid",
        "state",
        "object",
        "include_related",
        "start_date__gte",
        "start_date__lte",
        "end_date__gte",
        "end_date__lte",
    },
    "/api/v1/region/": {"name", "provider"},
    "/api/v1/az/": {"name", "region"},
    "/api/v1/nodetype/": {"name", "regions", "availability_zones"},
}
STATE_FILTERS = {CLUSTERS: NodeClusterState, NODES: NodeState, ACTIONS: ActionState}

# Real objects for every path template, so a failure is about the request, never about a missing object.
REAL_PATH_PARAMS: dict[str, Callable[[World], dict]] = {
    "/api/v1/nodecluster/{uuid}/": lambda w: {"uuid": w.deployed.uuid},
    "/api/v1/nodecluster/{uuid}/deploy/": lambda w: {"uuid": w.init.uuid},
    "/api/v1/nodecluster/{uuid}/docker-upgrade/": lambda w: {"uuid": w.deployed.uuid},
    "/api/v1/node/{uuid}/": lambda w: {"uuid": w.node.uuid},
    "/api/v1/node/{uuid}/health-check/": lambda w: {"uuid": w.node.uuid},
    "/api/v1/node/{uuid}/docker-upgrade/": lambda w: {"uuid": w.node.uuid},
    "/api/v1/action/{uuid}/": lambda w: {"uuid": w.open_action.uuid},
    "/api/v1/action/{uuid}/cancel/": lambda w: {"uuid": w.open_action.uuid},
    "/api/v1/action/{uuid}/retry/": lambda w: {"uuid": w.finished_action.uuid},
    "/api/v1/provider/{name}/": lambda w: {"name": "digitalocean"},
    "/api/v1/region/{provider}/{name}/": lambda w: {"provider": "digitalocean", "name": "lon1"},
    "/api/v1/az/{provider}/{region}/{name}/": lambda w: {
        "provider": "aws",
        "region": "us-east-1",
        "name": "us-east-1a",
    },
    "/api/v1/nodetype/{provider}/{name}/": lambda w: {"provider": "aws", "name": "t2.micro"},
}
MISSING_PATH_PARAMS = {
    "uuid": "00000000-0000-4000-8000-000000000000",
    "name": "nowhere",
    "provider": "nocloud",
    "region": "nowhere-1",
}


def real_url(template: str, world: World) -> str:
    """The template filled in with an existing object's names."""
    return template.format(**REAL_PATH_PARAMS.get(template, lambda w: {})(world))


def template_params(template: str) -> list[str]:
    return re.findall(r"{(\w+)}", template)


def list_operations() -> list[str]:
    """Paths whose GET answers a page (drf-spectacular names these operations `*_list`)."""
    return [
        path for method, path in OPERATIONS if OPENAPI["paths"][path][method.lower()]["operationId"].endswith("_list")
    ]


def write_operations() -> list[tuple[str, str]]:
    return [(method, path) for method, path in OPERATIONS if method != "GET"]


def bodyless_write_operations() -> list[tuple[str, str]]:
    return [
        (method, path)
        for method, path in write_operations()
        if "requestBody" not in OPENAPI["paths"][path][method.lower()]
    ]


def operation_id(operation: tuple[str, str]) -> str:
    return f"{operation[0]} {operation[1]}"


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def send(client: APIClient, method: str, url: str, *, query=None, body=NO_BODY, content_type="application/json"):
    if query:
        url = f"{url}?{urlencode(query)}"
    if body is NO_BODY:
        return client.generic(method, url, content_type=None)
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic(method, url, data, content_type=content_type)


@dataclass(frozen=True)
class Call:
    """One real request: an operation, the objects it names, and the status it must answer with."""

    name: str
    method: str
    template: str
    status: int
    params: Callable[[World], dict] | None = None  # default: the template's REAL_PATH_PARAMS
    query: Callable[[World], dict] | dict | None = None
    body: object = NO_BODY
    content_type: str = "application/json"

    def run(self, client: APIClient, world: World):
        url = self.template.format(**self.params(world)) if self.params else real_url(self.template, world)
        query = self.query(world) if callable(self.query) else self.query
        return send(client, self.method, url, query=query, body=self.body, content_type=self.content_type)


def uuid_of(attr: str) -> Callable[[World], dict]:
    """Path parameters naming one of the world's clusters, nodes or actions."""
    return lambda w: {"uuid": getattr(w, attr).uuid}


SUCCESS_CALLS = [
    Call("auth", "GET", "/api/v1/auth/", 200),
    # node clusters
    Call("clusters", "GET", CLUSTERS, 200),
    Call("clusters page 2", "GET", CLUSTERS, 200, query={"limit": 1, "offset": 1}),
    Call("clusters by state", "GET", CLUSTERS, 200, query={"state": "Deployed"}),
    Call("clusters by name", "GET", CLUSTERS, 200, query={"name": "web"}),
    Call("clusters by uuid", "GET", CLUSTERS, 200, query=lambda w: {"uuid": str(w.aws.uuid)}),
    Call("clusters by uuid prefix", "GET", CLUSTERS, 200, query=lambda w: {"uuid__startswith": str(w.aws.uuid)[:8]}),
    Call("clusters by region", "GET", CLUSTERS, 200, query={"region": "/api/v1/region/aws/us-east-1/"}),
    Call("clusters by node type", "GET", CLUSTERS, 200, query={"node_type": "/api/v1/nodetype/digitalocean/1gb/"}),
    Call("create", "POST", CLUSTERS, 201, body={**CREATE_BODY, "tags": [{"name": "api"}], "target_num_nodes": 3}),
    Call(
        "create on aws",
        "POST",
        CLUSTERS,
        201,
        body={
            "name": "aws-api",
            "region": "/api/v1/region/aws/eu-west-1/",
            "node_type": "/api/v1/nodetype/aws/t2.small/",
            "provider_options": {
                "vpc": {"id": "vpc-1", "security_groups": ["sg-1"]},
                "iam": {"instance_profile_name": "p"},
            },
        },
    ),
    Call("init cluster", "GET", CLUSTER, 200, uuid_of("init")),
    Call("deployed cluster", "GET", CLUSTER, 200, uuid_of("deployed")),
    Call("aws cluster", "GET", CLUSTER, 200, uuid_of("aws")),
    Call("terminated cluster", "GET", CLUSTER, 200, uuid_of("terminated")),
    Call("cluster by dashless uuid", "GET", CLUSTER, 200, lambda w: {"uuid": w.deployed.uuid.hex}),
    Call("retag init", "PATCH", CLUSTER, 200, uuid_of("init"), body={"tags": [{"name": "a"}, {"name": "b"}]}),
    Call("resize init", "PATCH", CLUSTER, 200, uuid_of("init"), body={"target_num_nodes": 4}),
    Call("scale deployed", "PATCH", CLUSTER, 202, uuid_of("deployed"), body={"target_num_nodes": 3}),
    Call("terminate", "DELETE", CLUSTER, 202, uuid_of("deployed")),
    Call("deploy", "POST", "/api/v1/nodecluster/{uuid}/deploy/", 202, uuid_of("init")),
    Call("deploy with {}", "POST", "/api/v1/nodecluster/{uuid}/deploy/", 202, uuid_of("init"), body={}),
    Call("upgrade cluster", "POST", "/api/v1/nodecluster/{uuid}/docker-upgrade/", 202, uuid_of("deployed")),
    # nodes
    Call("nodes", "GET", NODES, 200),
    Call("nodes page 2", "GET", NODES, 200, query={"limit": 2, "offset": 2}),
    Call("nodes by state", "GET", NODES, 200, query={"state": "Deploying"}),
    Call("nodes by uuid", "GET", NODES, 200, query=lambda w: {"uuid": str(w.zone_node.uuid)}),
    Call("nodes by uuid prefix", "GET", NODES, 200, query=lambda w: {"uuid__startswith": str(w.node.uuid)[:4]}),
    Call("nodes by cluster", "GET", NODES, 200, query=lambda w: {"node_cluster": f"/api/v1/nodecluster/{w.aws.uuid}/"}),
    Call("nodes by node type", "GET", NODES, 200, query={"node_type": "/api/v1/nodetype/aws/t2.micro/"}),
    Call("nodes by region", "GET", NODES, 200, query={"region": "/api/v1/region/digitalocean/lon1/"}),
    Call("nodes by docker version", "GET", NODES, 200, query={"docker_version": "1.9.1"}),
    Call("node", "GET", NODE, 200, uuid_of("node")),
    Call("zone node", "GET", NODE, 200, uuid_of("zone_node")),
    Call("booting node", "GET", NODE, 200, uuid_of("booting_node")),
    Call("dead node", "GET", NODE, 200, uuid_of("dead_node")),
    Call("loose node", "GET", NODE, 200, uuid_of("loose_node")),
    Call("rename node", "PATCH", NODE, 200, uuid_of("node"), body={"nickname": "web-01", "tags": [{"name": "x"}]}),
    Call("terminate node", "DELETE", NODE, 202, uuid_of("spare_node")),
    Call("health-check node", "POST", "/api/v1/node/{uuid}/health-check/", 202, uuid_of("node")),
    Call("upgrade node", "POST", "/api/v1/node/{uuid}/docker-upgrade/", 202, uuid_of("node")),
    # actions
    Call("actions", "GET", ACTIONS, 200),
    Call("actions page 2", "GET", ACTIONS, 200, query={"limit": 2, "offset": 2}),
    Call("actions by uuid", "GET", ACTIONS, 200, query=lambda w: {"uuid": str(w.open_action.uuid)}),
    Call("actions by state", "GET", ACTIONS, 200, query={"state": "In progress"}),
    Call("actions by object", "GET", ACTIONS, 200, query=lambda w: {"object": f"/api/v1/nodecluster/{w.aws.uuid}/"}),
    Call(
        "actions by object with related",
        "GET",
        ACTIONS,
        200,
        query=lambda w: {"object": f"/api/v1/node/{w.zone_node.uuid}/", "include_related": "true"},
    ),
    Call("actions since (RFC 2822)", "GET", ACTIONS, 200, query={"start_date__gte": "Tue, 16 Sep 2014 17:01:15 +0000"}),
    Call("actions until (ISO 8601)", "GET", ACTIONS, 200, query={"start_date__lte": "2999-01-01T00:00:00Z"}),
    Call("actions ended since", "GET", ACTIONS, 200, query={"end_date__gte": "2014-09-16"}),
    Call("actions ended until", "GET", ACTIONS, 200, query={"end_date__lte": "2999-01-01"}),
    Call("open action", "GET", ACTION, 200, uuid_of("open_action")),
    Call("finished action", "GET", ACTION, 200, uuid_of("finished_action")),
    Call("cancel", "POST", "/api/v1/action/{uuid}/cancel/", 202, uuid_of("open_action")),
    Call("retry", "POST", "/api/v1/action/{uuid}/retry/", 202, uuid_of("finished_action")),
    # catalog
    Call("providers", "GET", "/api/v1/provider/", 200),
    Call("providers by name", "GET", "/api/v1/provider/", 200, query={"name": "aws"}),
    Call("provider", "GET", "/api/v1/provider/{name}/", 200),
    Call("regions", "GET", "/api/v1/region/", 200, query={"limit": 1000}),
    Call("regions by provider", "GET", "/api/v1/region/", 200, query={"provider": "/api/v1/provider/aws/"}),
    Call("regions by name", "GET", "/api/v1/region/", 200, query={"name": "lon1"}),
    Call("region", "GET", "/api/v1/region/{provider}/{name}/", 200),
    Call("zones", "GET", "/api/v1/az/", 200),
    Call("zones by region", "GET", "/api/v1/az/", 200, query={"region": "/api/v1/region/aws/us-east-1/"}),
    Call("zones by name", "GET", "/api/v1/az/", 200, query={"name": "us-east-1a"}),
    Call("zone", "GET", "/api/v1/az/{provider}/{region}/{name}/", 200),
    Call("node types", "GET", "/api/v1/nodetype/", 200),
    Call("node types by name", "GET", "/api/v1/nodetype/", 200, query={"name": "1gb"}),
    Call("node types by region", "GET", "/api/v1/nodetype/", 200, query={"regions": "/api/v1/region/aws/us-east-1/"}),
    Call(
        "node types by zone",
        "GET",
        "/api/v1/nodetype/",
        200,
        query={"availability_zones": "/api/v1/az/aws/us-east-1/us-east-1a/"},
    ),
    Call("node type", "GET", "/api/v1/nodetype/{provider}/{name}/", 200),
]

BAD_INPUT_CALLS = [
    Call("unknown cluster state", "GET", CLUSTERS, 400, query={"state": "Sleeping"}),
    Call("malformed region filter", "GET", CLUSTERS, 400, query={"region": "lon1"}),
    Call("negative offset", "GET", CLUSTERS, 400, query={"offset": -1}),
    Call("malformed uuid filter", "GET", NODES, 400, query={"uuid": "not-a-uuid"}),
    Call("malformed uuid prefix", "GET", NODES, 400, query={"uuid__startswith": "xyz"}),
    Call("action object not a cluster or node", "GET", ACTIONS, 400, query={"object": "/api/v1/region/aws/us-east-1/"}),
    Call("action date not a date", "GET", ACTIONS, 400, query={"start_date__gte": "yesterday"}),
    Call(
        "include_related not a boolean",
        "GET",
        ACTIONS,
        400,
        query={"object": "/api/v1/node/x/", "include_related": "maybe"},
    ),
    Call("malformed zone filter", "GET", "/api/v1/nodetype/", 400, query={"availability_zones": "us-east-1a"}),
    Call("create without fields", "POST", CLUSTERS, 400, body={}),
    Call(
        "create in unknown region",
        "POST",
        CLUSTERS,
        400,
        body={**CREATE_BODY, "region": "/api/v1/region/digitalocean/mars1/"},
    ),
    Call("create with read-only field", "POST", CLUSTERS, 400, body={**CREATE_BODY, "state": "Deployed"}),
    Call("create with malformed JSON", "POST", CLUSTERS, 400, body='{"name": '),
    Call("create with a list body", "POST", CLUSTERS, 400, body="[]"),
    Call(
        "create mixing providers",
        "POST",
        CLUSTERS,
        400,
        body={**CREATE_BODY, "node_type": "/api/v1/nodetype/aws/t2.micro/"},
    ),
    Call(
        "create with options on digitalocean",
        "POST",
        CLUSTERS,
        400,
        body={**CREATE_BODY, "provider_options": {"vpc": {}}},
    ),
    Call("scale below zero", "PATCH", CLUSTER, 400, uuid_of("deployed"), body={"target_num_nodes": -1}),
    Call("patch read-only field", "PATCH", CLUSTER, 400, uuid_of("deployed"), body={"state": "Deployed"}),
    Call("tags not a list", "PATCH", NODE, 400, uuid_of("node"), body={"tags": "web"}),
    Call("blank nickname", "PATCH", NODE, 400, uuid_of("node"), body={"nickname": ""}),
]

CONFLICT_CALLS = [
    Call("deploy a deployed cluster", "POST", "/api/v1/nodecluster/{uuid}/deploy/", 409, uuid_of("deployed")),
    Call("deploy a terminated cluster", "POST", "/api/v1/nodecluster/{uuid}/deploy/", 409, uuid_of("terminated")),
    Call("upgrade an init cluster", "POST", "/api/v1/nodecluster/{uuid}/docker-upgrade/", 409, uuid_of("init")),
    Call("patch a terminated cluster", "PATCH", CLUSTER, 409, uuid_of("terminated"), body={"nickname": "x"}),
    Call("terminate a terminated cluster", "DELETE", CLUSTER, 409, uuid_of("terminated")),
    Call("terminate a booting node", "DELETE", NODE, 409, uuid_of("booting_node")),
    Call("health-check a booting node", "POST", "/api/v1/node/{uuid}/health-check/", 409, uuid_of("booting_node")),
    Call("upgrade a booting node", "POST", "/api/v1/node/{uuid}/docker-upgrade/", 409, uuid_of("booting_node")),
    Call("patch a terminated node", "PATCH", NODE, 409, uuid_of("dead_node"), body={"nickname": "x"}),
    Call("cancel a finished action", "POST", "/api/v1/action/{uuid}/cancel/", 409, uuid_of("finished_action")),
    Call("retry an open action", "POST", "/api/v1/action/{uuid}/retry/", 409, uuid_of("open_action")),
]


def call_id(call: Call) -> str:
    return call.name


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


# --- the document --------------------------------------------------------------------------------------------------


def test_schema_is_valid_openapi_3(tmp_path: Path):
    target = tmp_path / "schema.yaml"

    # drf-spectacular's own check (`manage.py spectacular --validate --fail-on-warn`), then openapi-spec-validator.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    validate_openapi_document(yaml.safe_load(target.read_text()))

    assert OPENAPI["openapi"].startswith("3.0")


def test_schema_and_docs_are_served_without_credentials(anonymous):
    yaml_response = anonymous.get("/api/v1/schema/")
    json_response = anonymous.get("/api/v1/schema/", {"format": "json"})
    docs = anonymous.get("/api/docs/")
    redoc = anonymous.get("/api/redoc/")

    assert yaml_response.status_code == 200
    assert yaml_response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(yaml_response.content) == OPENAPI
    assert json_response.status_code == 200
    assert json_response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert json.loads(json_response.content) == OPENAPI
    for page in (docs, redoc):
        assert page.status_code == 200
        assert page["Content-Type"].startswith("text/html")
        assert b"/api/v1/schema/" in page.content


class AssetCollector(HTMLParser):
    """The URLs a page loads: `<script src>` and `<link href>`."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        wanted = {"script": "src", "link": "href"}.get(tag)
        self.urls.extend(value for name, value in attrs if name == wanted and value)


def page_assets(client: APIClient, path: str) -> list[str]:
    collector = AssetCollector()
    collector.feed(client.get(path).content.decode())
    return collector.urls


@pytest.mark.parametrize(
    "path",
    [
        "/api/docs/",
        "/api/redoc/",
    ],
)
def test_docs_pages_load_only_local_assets(anonymous, path):
    urls = page_assets(anonymous, path)

    assert urls, "the page loads no script at all"
    remote = [url for url in urls if re.match(r"^(https?:)?//", url)]
    assert not remote, f"{path} loads assets from other hosts: {remote}"
    for url in urls:
        assert url.startswith("/static/"), url
        asset = anonymous.get(url)
        assert asset.status_code == 200, url
        asset.close()


def test_schema_documents_both_auth_schemes_as_alternatives():
    schemes = OPENAPI["components"]["securitySchemes"]

    assert schemes["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`ApiKey <username>:<apikey>`",
    }
    assert schemes["BasicAuth"]["type"] == "http"
    assert schemes["BasicAuth"]["scheme"] == "basic"
    for method, path in OPERATIONS:
        # Two requirement objects = either one; no `{}` entry = credentials are never optional.
        assert OPENAPI["paths"][path][method.lower()]["security"] == [{"ApiKeyAuth": []}, {"BasicAuth": []}], path


@pytest.mark.parametrize("path", list_operations())
def test_every_list_is_a_tastypie_page_with_limit_and_offset(path):
    operation = OPENAPI["paths"][path]["get"]
    page = resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert page["type"] == "object"
    assert set(page["required"]) == {"meta", "objects"}
    meta = page["properties"]["meta"]
    assert set(meta["required"]) == {"limit", "next", "offset", "previous", "total_count"}
    assert {name: prop["type"] for name, prop in meta["properties"].items()} == {
        "limit": "integer",
        "next": "string",
        "offset": "integer",
        "previous": "string",
        "total_count": "integer",
    }
    assert meta["properties"]["next"]["nullable"] is True
    assert meta["properties"]["previous"]["nullable"] is True
    assert page["properties"]["objects"]["type"] == "array"
    assert "$ref" in page["properties"]["objects"]["items"]
    for name in ("limit", "offset"):
        assert parameters[name]["in"] == "query"
        assert parameters[name]["schema"]["type"] == "integer"


def test_every_error_response_is_the_error_body():
    error = OPENAPI["components"]["schemas"]["Error"]

    assert error["required"] == ["error"]
    assert error["properties"]["error"]["type"] == "string"
    assert error["properties"]["errors"]["type"] == "object"
    for method, path in OPERATIONS:
        for status, response in OPENAPI["paths"][path][method.lower()]["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


@pytest.mark.parametrize("path", list(README_FILTERS))
def test_every_filter_the_readme_lists_is_documented(path):
    parameters = {parameter["name"]: parameter for parameter in OPENAPI["paths"][path]["get"]["parameters"]}

    assert README_FILTERS[path] | {"limit", "offset"} <= set(parameters)
    assert all(parameters[name]["in"] == "query" for name in README_FILTERS[path])
    if path in STATE_FILTERS:
        assert sorted(parameters["state"]["schema"]["enum"]) == sorted(STATE_FILTERS[path].values)
    if path == ACTIONS:
        assert parameters["include_related"]["schema"]["type"] == "boolean"


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
def test_every_operation_declares_the_errors_it_can_answer(operation):
    method, path = operation
    spec = OPENAPI["paths"][path][method.lower()]
    declared = set(spec["responses"])

    assert {"401", "429"} <= declared
    if template_params(path):
        assert "404" in declared
    if method == "GET" and path in list_operations():
        assert "400" in declared  # bad filters, limit or offset
    if method != "GET":
        assert {"415"} <= declared
    if "requestBody" in spec:
        assert {"400", "413"} <= declared
        assert list(spec["requestBody"]["content"]) == ["application/json"]
    assert any(status.startswith("2") for status in declared)


def test_the_checker_catches_what_breaks_the_schema(world):
    auth = {"username": "alice", "user": "alice"}
    action_page = OPENAPI["paths"][ACTION]["get"]["responses"]["200"]
    action_body = ActionSerializer(world.finished_action).data

    assert CHECKER.check("GET", "/api/v1/auth/", JsonResponse(auth)) == auth
    assert CHECKER.validate_body(action_page, JsonResponse({**action_body, "end_date": None}), where="nullable")
    for bad, status in [
        ({"username": "alice"}, 200),  # a required field missing
        ({**auth, "admin": True}, 200),  # a field the schema does not describe
        ({"username": 1, "user": "alice"}, 200),  # a wrong type
        ({"detail": "no"}, 401),  # DRF's default error body instead of Tutum's
        (auth, 404),  # a status the operation does not declare
    ]:
        with pytest.raises(AssertionError):
            CHECKER.check("GET", "/api/v1/auth/", JsonResponse(bad, status=status))
    for field_name, value in [("start_date", "2014-09-16T17:01:15Z"), ("uuid", None), ("state", "Sleeping")]:
        with pytest.raises(AssertionError):  # ISO 8601 is not RFC 2822; only `nullable` fields take null
            CHECKER.validate_body(action_page, JsonResponse({**action_body, field_name: value}), where=field_name)


# --- real responses: successes -------------------------------------------------------------------------------------


def test_success_calls_reach_every_documented_operation():
    called = {(call.method, call.template) for call in SUCCESS_CALLS}

    assert called == set(OPERATIONS)
    assert set(REAL_PATH_PARAMS) == {path for _, path in OPERATIONS if template_params(path)}
    for method, path in OPERATIONS:
        statuses = {str(call.status) for call in SUCCESS_CALLS if (call.method, call.template) == (method, path)}
        documented = {status for status in OPENAPI["paths"][path][method.lower()]["responses"] if status[0] == "2"}
        assert statuses == documented, (method, path)


@pytest.mark.parametrize("call", SUCCESS_CALLS, ids=call_id)
def test_success_responses_match_the_schema(client, world, call):
    response = call.run(client, world)

    assert response.status_code == call.status, response.content[:500]
    body = CHECKER.check(call.method, call.template, response)
    if call.method == "GET" and "objects" in body:
        assert body["objects"], "an empty page proves nothing about the objects' schema"
    if call.method != "GET":
        assert re.fullmatch(r"/api/v1/action/[0-9a-f-]{36}/", response[ACTION_HEADER])


def test_pages_link_to_each_other_with_paths_that_keep_the_filters(client, world):
    first = client.get(NODES, {"limit": 1, "state": "Deployed"})
    page = CHECKER.check("GET", NODES, first)
    second = client.get(page["meta"]["next"])

    assert page["meta"]["next"].startswith("/api/v1/node/?")
    assert "state=Deployed" in page["meta"]["next"]
    assert CHECKER.check("GET", NODES, second)["meta"]["previous"].startswith("/api/v1/node/?")


# --- real responses: errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
def test_every_operation_answers_a_documented_401_without_credentials(anonymous, world, operation):
    method, template = operation
    body = {} if "requestBody" in OPENAPI["paths"][template][method.lower()] else NO_BODY

    response = send(anonymous, method, real_url(template, world), body=body)

    assert response.status_code == 401
    assert CHECKER.check(method, template, response)["error"]
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize(
    "authorization",
    [
        "ApiKey alice:0000000000000000000000000000000000000000",
        "Basic YWxpY2U6d3Jvbmc=",  # alice:wrong
        "Basic !!!",
        "Bearer token",
        "ApiKey alice",
    ],
)
def test_bad_credentials_are_a_documented_401(world, authorization):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)

    response = client.get(CLUSTERS)

    assert response.status_code == 401
    CHECKER.check("GET", CLUSTERS, response)


def test_basic_auth_is_accepted_like_the_schema_says(user, api_key, world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{user.username}:{api_key}".encode()).decode())

    response = client.get("/api/v1/auth/")

    assert response.status_code == 200
    assert CHECKER.check("GET", "/api/v1/auth/", response) == {"username": "alice", "user": "alice"}


@pytest.mark.parametrize(
    "operation", [operation for operation in OPERATIONS if template_params(operation[1])], ids=operation_id
)
def test_every_object_operation_answers_a_documented_404_for_an_unknown_object(client, world, operation):
    method, template = operation
    body = {} if "requestBody" in OPENAPI["paths"][template][method.lower()] else NO_BODY

    response = send(client, method, template.format(**MISSING_PATH_PARAMS), body=body)

    assert response.status_code == 404, response.content[:300]
    CHECKER.check(method, template, response)


def test_another_users_cluster_is_a_documented_404(other_client, world):
    response = other_client.get(f"/api/v1/nodecluster/{world.deployed.uuid}/")

    assert response.status_code == 404
    CHECKER.check("GET", CLUSTER, response)


@pytest.mark.parametrize("path", list_operations())
def test_every_list_answers_a_documented_400_for_a_bad_limit(client, world, path):
    response = client.get(path, {"limit": 0})

    assert response.status_code == 400
    assert "limit" in CHECKER.check("GET", path, response)["errors"]


@pytest.mark.parametrize("call", BAD_INPUT_CALLS, ids=call_id)
def test_bad_input_is_a_documented_400(client, world, call):
    response = call.run(client, world)

    assert response.status_code == 400, response.content[:500]
    assert CHECKER.check(call.method, call.template, response)["error"]


@pytest.mark.parametrize("call", CONFLICT_CALLS, ids=call_id)
def test_state_conflicts_are_a_documented_409(client, world, call):
    response = call.run(client, world)

    assert response.status_code == 409, response.content[:500]
    assert "state" in CHECKER.check(call.method, call.template, response)["error"]


@pytest.mark.parametrize("operation", write_operations(), ids=operation_id)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_every_write_answers_a_documented_415_for_a_body_that_is_not_json(client, world, operation, content_type):
    method, template = operation
    url = real_url(template, world)

    response = send(client, method, url, body="name=web", content_type=content_type)

    assert response.status_code == 415, response.content[:300]
    CHECKER.check(method, template, response)


@pytest.mark.parametrize(
    "operation",
    [operation for operation in write_operations() if operation not in bodyless_write_operations()],
    ids=operation_id,
)
def test_every_body_too_large_is_a_documented_413(client, world, settings, operation):
    method, template = operation
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    url = real_url(template, world)

    response = send(client, method, url, body={**CREATE_BODY, "nickname": "x" * 2048})

    assert response.status_code == 413
    CHECKER.check(method, template, response)


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
def test_every_operation_answers_a_documented_429_when_throttled(client, world, settings, operation):
    method, template = operation
    settings.API_THROTTLE_RATE = "1/min"
    cache.clear()
    assert client.get("/api/v1/auth/").status_code == 200  # spends the one allowed request
    url = real_url(template, world)

    response = send(client, method, url)

    assert response.status_code == 429
    CHECKER.check(method, template, response)
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/api/v1/nodecluster/{uuid}/"),
        ("POST", "/api/v1/nodecluster/{uuid}/"),
        ("GET", "/api/v1/nodecluster/{uuid}/deploy/"),
        ("DELETE", "/api/v1/action/{uuid}/"),
        ("PATCH", "/api/v1/provider/digitalocean/"),
        ("POST", "/api/v1/region/"),
    ],
)
def test_undocumented_methods_answer_405_with_the_error_body(client, world, method, url):
    response = send(client, method, url.format(uuid=world.deployed.uuid))

    assert response.status_code == 405
    CHECKER.check_error_shape(response, where=f"{method} {url}")
    assert response["Allow"]
    assert method.lower() not in OPENAPI["paths"].get(url, {})


# --- bugs the real responses show ----------------------------------------------------------------------------------


def undocumented_statuses(client, world, *, body, expected: int) -> list[str]:
    """The body-less writes that answer `expected` to `body` without documenting it."""
    found = []
    for method, template in bodyless_write_operations():
        response = send(client, method, real_url(template, world), body=body)
        assert response.status_code == expected, (method, template, response.content[:300])
        CHECKER.check_error_shape(response, where=f"{method} {template}")
        if str(expected) not in CHECKER.operation(method, template)["responses"]:
            found.append(f"{method} {template}")
    return found


def test_a_malformed_body_on_a_bodyless_write_is_a_documented_400(client, world):
    assert undocumented_statuses(client, world, body="{", expected=400) == []


def test_an_oversized_body_on_a_bodyless_write_is_a_documented_413(client, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    assert undocumented_statuses(client, world, body={"padding": "x" * 2048}, expected=413) == []


def test_the_action_header_is_documented():
    undocumented = [
        f"{method} {path} -> {status}"
        for method, path in write_operations()
        for status, response in OPENAPI["paths"][path][method.lower()]["responses"].items()
        if status.startswith("2") and ACTION_HEADER not in response.get("headers", {})
    ]

    assert undocumented == []


ON_POSTGRESQL = connection.vendor == "postgresql"


@pytest.mark.parametrize(
    ("template", "url"),
    [
        ("/api/v1/provider/{name}/", "/api/v1/provider/digital%00ocean/"),
        ("/api/v1/region/{provider}/{name}/", "/api/v1/region/digitalocean/lon%001/"),
        ("/api/v1/az/{provider}/{region}/{name}/", "/api/v1/az/aws/us-east-1/%00/"),
        ("/api/v1/nodetype/{provider}/{name}/", "/api/v1/nodetype/%00/1gb/"),
    ],
)
def test_a_nul_in_a_catalog_path_is_a_documented_404(client, world, template, url):
    response = client.get(url)

    assert response.status_code == 404
    CHECKER.check("GET", template, response)


@pytest.mark.parametrize(
    "reference",
    [{"region": "/api/v1/region/digitalocean/lon\x001/"}, {"node_type": "/api/v1/nodetype/digitalocean/1\x00gb/"}],
    ids=["region", "node_type"],
)
def test_a_nul_in_a_create_reference_is_a_documented_400(client, world, reference):
    response = send(client, "POST", CLUSTERS, body={**CREATE_BODY, **reference})

    assert response.status_code == 400
    CHECKER.check("POST", CLUSTERS, response)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (ACTIONS, "start_date__gte"),  # DateFormField
        (ACTIONS, "include_related"),  # StrictBooleanFormField
        (CLUSTERS, "region"),  # ResourceURIFormField
        (NODES, "node_cluster"),
        ("/api/v1/nodetype/", "availability_zones"),
    ],
)
def test_a_percent_sign_in_a_filter_is_a_documented_400(client, world, path, name):
    response = client.get(path, {name: "%s"})

    assert response.status_code == 400
    CHECKER.check("GET", path, response)


@pytest.mark.parametrize("operation", [op for op in write_operations() if "{uuid}" in op[1]], ids=operation_id)
def test_an_unknown_api_path_is_a_json_404(user, api_key, world, operation):
    method, template = operation
    # Like curl or an SDK: no CSRF cookie (DRF's test client skips the CSRF check, a real request does not).
    real_client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"ApiKey {user.username}:{api_key}")

    response = real_client.generic(method, template.format(uuid="not-a-uuid"))

    assert response.status_code == 404
    CHECKER.check(method, template, response)


def test_an_unknown_api_path_is_a_json_404_for_reads(client, world):
    response = client.get("/api/v1/nodecluster/not-a-uuid/")

    assert response.status_code == 404
    CHECKER.check("GET", CLUSTER, response)


def test_the_documented_create_example_is_accepted(client, world):
    request = resolve(OPENAPI["paths"][CLUSTERS]["post"]["requestBody"]["content"]["application/json"]["schema"])
    example = {name: request["properties"][name]["example"] for name in ("region", "node_type")}

    response = send(client, "POST", CLUSTERS, body={"name": "from-the-docs", **example})

    assert response.status_code == 201, response.content[:300]
    CHECKER.check("POST", CLUSTERS, response)
