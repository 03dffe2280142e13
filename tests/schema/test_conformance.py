"""The OpenAPI schema: valid, served with local docs, true to Tutum's wire format and to what every endpoint answers."""

import base64
import datetime
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
from jsonschema import Draft4Validator
from openapi_spec_validator import validate as validate_openapi_document
from rest_framework.test import APIClient
from schemathesis.specs.openapi.expressions import parser as schemathesis_expressions

from nodeclusters.api.serializers import ActionSerializer
from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.filtersets import parse_date_input
from nodeclusters.wire.grammar import DATE_INPUT_PATTERN, decimal_range_pattern
from tests.schema.helpers import ResponseChecker, generate_openapi, operations, to_json_schema
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
WEBHOOKS, WEBHOOK = "/api/v1/webhook/", "/api/v1/webhook/{uuid}/"
CREDENTIALS = "/api/v1/provider/{name}/credentials/"
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
        "uuid__startswith",
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
    "/api/v1/action/{uuid}/logs/": lambda w: {"uuid": w.finished_action.uuid},
    "/api/v1/provider/{name}/": lambda w: {"name": "digitalocean"},
    "/api/v1/region/{provider}/{name}/": lambda w: {"provider": "digitalocean", "name": "lon1"},
    "/api/v1/az/{provider}/{region}/{name}/": lambda w: {
        "provider": "aws",
        "region": "us-east-1",
        "name": "us-east-1a",
    },
    "/api/v1/nodetype/{provider}/{name}/": lambda w: {"provider": "aws", "name": "t2.micro"},
    "/api/v1/webhook/{uuid}/": lambda w: {"uuid": w.webhook.uuid},
    "/api/v1/webhook/{uuid}/delivery/": lambda w: {"uuid": w.webhook.uuid},
    # The world's user has live DigitalOcean nodes on the shared account: linking another account there is a 409.
    "/api/v1/provider/{name}/credentials/": lambda w: {"name": "local"},
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
    body: object = NO_BODY  # or a function of the world
    content_type: str = "application/json"

    def run(self, client: APIClient, world: World):
        url = self.template.format(**self.params(world)) if self.params else real_url(self.template, world)
        query = self.query(world) if callable(self.query) else self.query
        body = self.body(world) if callable(self.body) else self.body
        return send(client, self.method, url, query=query, body=body, content_type=self.content_type)


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
    Call(
        "actions by uuid prefix", "GET", ACTIONS, 200, query=lambda w: {"uuid__startswith": str(w.open_action.uuid)[:8]}
    ),
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
    Call("action log", "GET", "/api/v1/action/{uuid}/logs/", 200, uuid_of("finished_action")),
    Call("action log tail", "GET", "/api/v1/action/{uuid}/logs/", 200, uuid_of("finished_action"), query={"tail": 1}),
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
    # webhooks
    Call("webhooks", "GET", WEBHOOKS, 200),
    Call("create webhook", "POST", WEBHOOKS, 201, body={"url": "https://hooks.example.com/x", "types": ["node"]}),
    Call("webhook", "GET", WEBHOOK, 200),
    Call("turn a webhook off", "PATCH", WEBHOOK, 200, body={"active": False}),
    Call("delete webhook", "DELETE", WEBHOOK, 204),
    Call("webhook deliveries", "GET", "/api/v1/webhook/{uuid}/delivery/", 200),
    # linked cloud accounts
    Call("link account", "PUT", CREDENTIALS, 200, body={"token": "sim-token-1234", "label": "mine"}),
    Call("linked account", "GET", CREDENTIALS, 200),
    Call("unlink account", "DELETE", CREDENTIALS, 204),
    # exact control
    Call(
        "bounds and policy",
        "PATCH",
        CLUSTER,
        200,
        uuid_of("deployed"),
        body={"max_num_nodes": 9, "scale_in_policy": "oldest_first"},
    ),
    Call(
        "remove a node",
        "PATCH",
        CLUSTER,
        202,
        uuid_of("deployed"),
        body=lambda w: {"remove_nodes": [f"/api/v1/node/{w.node.uuid}/"]},
    ),
    Call(
        "dry-run scale",
        "PATCH",
        CLUSTER,
        200,
        uuid_of("deployed"),
        query={"dry_run": "true"},
        body={"target_num_nodes": 1},
    ),
    Call("dry-run create", "POST", CLUSTERS, 200, query={"dry_run": "true"}, body=CREATE_BODY),
    Call(
        "dry-run deploy", "POST", "/api/v1/nodecluster/{uuid}/deploy/", 200, uuid_of("init"), query={"dry_run": "true"}
    ),
    Call("dry-run terminate", "DELETE", CLUSTER, 200, uuid_of("deployed"), query={"dry_run": "true"}),
]

BAD_INPUT_CALLS = [
    Call("unknown cluster state", "GET", CLUSTERS, 400, query={"state": "Sleeping"}),
    Call("malformed region filter", "GET", CLUSTERS, 400, query={"region": "lon1"}),
    Call("negative offset", "GET", CLUSTERS, 400, query={"offset": -1}),
    Call("malformed uuid filter", "GET", NODES, 400, query={"uuid": "not-a-uuid"}),
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
    Call(
        "negative log tail", "GET", "/api/v1/action/{uuid}/logs/", 400, uuid_of("finished_action"), query={"tail": -1}
    ),
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
    Call("webhook to an ftp URL", "POST", WEBHOOKS, 400, body={"url": "ftp://hooks.example.com/"}),
    Call("webhook of an unknown type", "POST", WEBHOOKS, 400, body={"url": "https://h.example.com/", "types": ["x"]}),
    Call("webhook turned on with a string", "PATCH", WEBHOOK, 400, body={"active": "true"}),
    Call("link an account without a token", "PUT", CREDENTIALS, 400, body={}),
    Call(
        "target above the bound",
        "PATCH",
        CLUSTER,
        400,
        uuid_of("init"),
        body={"target_num_nodes": 5, "max_num_nodes": 4},
    ),
    Call(
        "remove a stranger",
        "PATCH",
        CLUSTER,
        400,
        uuid_of("deployed"),
        body=lambda w: {"remove_nodes": [f"/api/v1/node/{w.zone_node.uuid}/"]},
    ),
    Call("dry run not a boolean", "PATCH", CLUSTER, 400, uuid_of("deployed"), query={"dry_run": "yes"}, body={}),
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

    assert {"401", "406", "429"} <= declared
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
    if call.method != "GET" and "dry_run" in (call.query or {}):
        assert ACTION_HEADER not in response and body["dry_run"] is True  # a dry run records nothing
    elif call.method != "GET":
        assert re.fullmatch(r"/api/v1/action/[0-9a-f-]{36}/", response[ACTION_HEADER])


def test_the_action_log_in_plain_text_is_documented(client, world):
    template = "/api/v1/action/{uuid}/logs/"
    declared = CHECKER.operation("GET", template)["responses"]

    text = client.get(real_url(template, world), HTTP_ACCEPT="text/plain")
    missing = client.get(template.format(**MISSING_PATH_PARAMS), HTTP_ACCEPT="text/plain")

    assert text.status_code == 200
    assert text["Content-Type"] == "text/plain; charset=utf-8"
    assert declared["200"]["content"]["text/plain"]["schema"] == {"type": "string"}
    assert text.content.decode().endswith(" 2 node(s) up\n")
    assert missing.status_code == 404
    CHECKER.check("GET", template, missing)  # errors stay JSON, and only JSON is declared for them
    assert list(declared["404"]["content"]) == ["application/json"]


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


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
def test_every_operation_answers_a_documented_406_to_an_accept_header_it_cannot_satisfy(client, world, operation):
    method, template = operation
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_ACCEPT="application/xml")
    body = {} if "requestBody" in OPENAPI["paths"][template][method.lower()] else NO_BODY

    response = send(client, method, real_url(template, world), body=body)

    assert response.status_code == 406
    assert "Accept" in CHECKER.check(method, template, response)["error"]


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
    response = client.get(real_url(path, world), {"limit": 0})  # a webhook's deliveries: a list of one object

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


# --- the document states what the server enforces -----------------------------------------------------------------
# Schemathesis' positive_data_acceptance and negative_data_rejection checks (tests/schema/test_fuzz.py) hold the
# server to the document on generated requests; these pin the cases found that way, and the server errors the
# document's patterns now keep out.


def request_validator(schema: dict) -> Draft4Validator:
    """A validator of requests: not strict (the document's own `additionalProperties` say what is refused)."""
    components = {name: to_json_schema(sub, strict=False) for name, sub in OPENAPI["components"]["schemas"].items()}
    return Draft4Validator({**to_json_schema(schema, strict=False), "components": {"schemas": components}})


def wire_value(text: str, schema: dict):
    """A query parameter's text as the value its schema describes (what a validator reads off the wire)."""
    if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if schema.get("type") == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def document_admits(method: str, template: str, query: dict, body) -> bool:
    operation = CHECKER.operation(method, template)
    parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    for name, text in query.items():
        parameter = parameters[name]
        if text == "" and parameter.get("allowEmptyValue"):
            continue
        if not request_validator(parameter["schema"]).is_valid(wire_value(text, parameter["schema"])):
            return False
    if body is NO_BODY:
        return True
    return request_validator(operation["requestBody"]["content"]["application/json"]["schema"]).is_valid(body)


AWS_CREATE_BODY = {
    "name": "aws",
    "region": "/api/v1/region/aws/us-east-1/",
    "node_type": "/api/v1/nodetype/aws/t2.micro/",
}
LOGS = "/api/v1/action/{uuid}/logs/"
# (name, method, template, query, body): the server must accept exactly what the document admits.
ADMISSION_CASES = [
    # the page: limit 1 and up (a larger one is capped), offset 0 to 2^31-1, digits only
    ("limit=0", "GET", CLUSTERS, {"limit": "0"}, NO_BODY),
    ("limit=1", "GET", CLUSTERS, {"limit": "1"}, NO_BODY),
    ("limit above the maximum", "GET", CLUSTERS, {"limit": "100000"}, NO_BODY),
    ("limit with a sign", "GET", CLUSTERS, {"limit": "+5"}, NO_BODY),
    ("limit with an underscore", "GET", NODES, {"limit": "1_0"}, NO_BODY),
    ("largest offset", "GET", NODES, {"offset": str(2**31 - 1)}, NO_BODY),
    ("offset too large", "GET", NODES, {"offset": str(2**31)}, NO_BODY),
    # empty values are no filter
    ("empty page", "GET", CLUSTERS, {"limit": "", "offset": ""}, NO_BODY),
    ("empty filters", "GET", CLUSTERS, {"name": "", "state": "", "region": "", "node_type": "", "uuid": ""}, NO_BODY),
    ("empty action filters", "GET", ACTIONS, {"object": "", "start_date__gte": "", "include_related": ""}, NO_BODY),
    ("empty log options", "GET", LOGS, {"tail": "", "format": ""}, NO_BODY),
    # text and uuids
    ("NUL in a name", "GET", CLUSTERS, {"name": "a\x00b"}, NO_BODY),
    ("dashless uuid", "GET", NODES, {"uuid": "00000000000040008000000000000000"}, NO_BODY),
    ("braced uuid", "GET", NODES, {"uuid": "{00000000-0000-4000-8000-000000000000}"}, NO_BODY),
    ("any uuid prefix", "GET", NODES, {"uuid__startswith": "my_cluster"}, NO_BODY),
    # resource URIs: a path or a full URL, nothing around it
    ("full URL", "GET", CLUSTERS, {"region": "https://tutum.example:8443/api/v1/region/aws/us-east-1"}, NO_BODY),
    ("space before a URI", "GET", CLUSTERS, {"region": " /api/v1/region/aws/us-east-1/"}, NO_BODY),
    ("broken URL in a region filter (was a 500)", "GET", CLUSTERS, {"region": "http://["}, NO_BODY),
    ("broken URL in an object filter (was a 500)", "GET", ACTIONS, {"object": "http://["}, NO_BODY),
    ("zone filter", "GET", "/api/v1/nodetype/", {"availability_zones": "/api/v1/az/aws/us-east-1/us-east-1a"}, NO_BODY),
    # dates: RFC 2822 or ISO 8601, days that exist, years 1 to 9999 (out of range in UTC is clamped)
    ("RFC 2822 date", "GET", ACTIONS, {"start_date__gte": "Tue, 16 Sep 2014 17:01:15 +0000"}, NO_BODY),
    ("RFC 2822 without weekday or seconds", "GET", ACTIONS, {"end_date__lte": "16 Sep 2014 17:01 GMT"}, NO_BODY),
    ("ISO date", "GET", ACTIONS, {"end_date__gte": "2016-02-29"}, NO_BODY),
    ("ISO date that does not exist", "GET", ACTIONS, {"end_date__gte": "2014-02-29"}, NO_BODY),
    ("ISO date-time", "GET", ACTIONS, {"start_date__lte": "2014-09-16t17:01:15.123456789+05:30"}, NO_BODY),
    ("earliest date east of UTC", "GET", ACTIONS, {"end_date__lte": "0001-01-01T00:00:00+05:00"}, NO_BODY),
    ("latest date west of UTC", "GET", ACTIONS, {"start_date__gte": "9999-12-31T23:59:59-05:00"}, NO_BODY),
    ("year 0", "GET", ACTIONS, {"start_date__gte": "0000-01-01"}, NO_BODY),
    ("not a date", "GET", ACTIONS, {"start_date__gte": "yesterday"}, NO_BODY),
    ("boolean", "GET", ACTIONS, {"include_related": "true"}, NO_BODY),
    ("not a boolean", "GET", ACTIONS, {"include_related": "maybe"}, NO_BODY),
    ("no log lines", "GET", LOGS, {"tail": "0"}, NO_BODY),
    ("negative tail", "GET", LOGS, {"tail": "-1"}, NO_BODY),
    # bodies
    ("provider_options null", "POST", CLUSTERS, {}, {**CREATE_BODY, "provider_options": None}),
    ("AWS options", "POST", CLUSTERS, {}, {**AWS_CREATE_BODY, "provider_options": {"vpc": {"id": "vpc-1"}}}),
    ("options elsewhere", "POST", CLUSTERS, {}, {**CREATE_BODY, "provider_options": {"vpc": {"id": "vpc-1"}}}),
    ("empty options elsewhere", "POST", CLUSTERS, {}, {**CREATE_BODY, "provider_options": {}}),
    ("mixed providers", "POST", CLUSTERS, {}, {**CREATE_BODY, "node_type": AWS_CREATE_BODY["node_type"]}),
    ("region not in the catalog", "POST", CLUSTERS, {}, {**CREATE_BODY, "region": "/api/v1/region/digitalocean/x/"}),
    ("broken region URL (was a 500)", "POST", CLUSTERS, {}, {**CREATE_BODY, "region": "http://[/api/v1/region/a/b/"}),
    ("full URLs", "POST", CLUSTERS, {}, {**CREATE_BODY, "region": "http://h/api/v1/region/digitalocean/ams2"}),
    ("empty tag name", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": [{"name": ""}]}),
    ("blank tag name", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": [{"name": " "}]}),
    ("tag name with spaces around", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": [{"name": " web "}]}),
    ("tag name with a control character", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": [{"name": "a\x07"}]}),
    ("tag with its origin", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": [{"name": "web", "origin": "user"}]}),
    ("tag with another key", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": [{"name": "web", "colour": "red"}]}),
    ("tag as a string", "POST", CLUSTERS, {}, {**CREATE_BODY, "tags": ["web"]}),
    ("disk as text (the CLI's --disk)", "POST", CLUSTERS, {}, {**CREATE_BODY, "disk": "60"}),
    ("disk as a decimal", "POST", CLUSTERS, {}, {**CREATE_BODY, "disk": "60.0"}),
    ("disk as a float", "POST", CLUSTERS, {}, {**CREATE_BODY, "disk": 60.5}),
    ("disk as a boolean", "POST", CLUSTERS, {}, {**CREATE_BODY, "disk": True}),
    ("disk too small as text", "POST", CLUSTERS, {}, {**CREATE_BODY, "disk": "9"}),
    ("blank name", "POST", CLUSTERS, {}, {**CREATE_BODY, "name": "   "}),
    ("name with spaces around", "POST", CLUSTERS, {}, {**CREATE_BODY, "name": " web "}),
    ("name too long", "POST", CLUSTERS, {}, {**CREATE_BODY, "name": "x" * 129}),
    ("blank nickname", "POST", CLUSTERS, {}, {**CREATE_BODY, "nickname": "  "}),
    ("unknown field", "POST", CLUSTERS, {}, {**CREATE_BODY, "colour": "red"}),
    ("blank nickname on update", "PATCH", CLUSTER, {}, {"nickname": " "}),
    ("target as text", "PATCH", CLUSTER, {}, {"target_num_nodes": "3"}),
    ("empty update", "PATCH", NODE, {}, {}),
]


@pytest.mark.parametrize(
    ("method", "template", "query", "body"),
    [case[1:] for case in ADMISSION_CASES],
    ids=[case[0] for case in ADMISSION_CASES],
)
def test_the_server_accepts_exactly_what_the_document_admits(client, world, method, template, query, body):
    admitted = document_admits(method, template, query, body)
    url = template.format(uuid=world.init.uuid) if template == CLUSTER else real_url(template, world)

    response = send(client, method, url, query=query, body=body)

    assert response.status_code != 500, response.content[:300]
    refused = response.status_code in (400, 413, 415)
    assert refused != admitted, f"document admits: {admitted}; server: {response.status_code} {response.content[:300]}"
    CHECKER.check(method, template, response)


def test_every_optional_query_parameter_may_be_empty():
    for method, path in OPERATIONS:
        for parameter in OPENAPI["paths"][path][method.lower()].get("parameters", []):
            if parameter["in"] == "query":
                assert parameter.get("allowEmptyValue") is True, (method, path, parameter["name"])


@pytest.mark.parametrize("path", list_operations())
def test_an_empty_filter_is_no_filter(client, world, path):
    names = [p["name"] for p in OPENAPI["paths"][path]["get"]["parameters"] if p["in"] == "query"]

    unfiltered = CHECKER.check("GET", path, client.get(real_url(path, world), {"limit": 1000}))
    emptied = CHECKER.check("GET", path, client.get(real_url(path, world), {**dict.fromkeys(names, ""), "limit": 1000}))

    assert emptied == unfiltered


def test_every_request_body_refuses_undocumented_fields():
    for method, path in OPERATIONS:
        body = OPENAPI["paths"][path][method.lower()].get("requestBody")
        if body:
            assert resolve(body["content"]["application/json"]["schema"])["additionalProperties"] is False, path


def test_the_page_parameters_state_their_range():
    for path in list_operations():
        parameters = {p["name"]: p["schema"] for p in OPENAPI["paths"][path]["get"]["parameters"]}
        assert parameters["limit"]["minimum"] == 1
        assert (parameters["offset"]["minimum"], parameters["offset"]["maximum"]) == (0, 2**31 - 1)


@pytest.mark.parametrize(("low", "high"), [(0, 1000), (10, 16384), (7, 123), (0, 0), (99, 101), (1, 100000)])
def test_decimal_range_patterns_match_exactly_their_range(low, high):
    pattern = re.compile(decimal_range_pattern(low, high))

    matching = [number for number in range(0, 10 * high + 20) if pattern.fullmatch(str(number))]

    assert matching == list(range(low, high + 1))
    assert not pattern.fullmatch(f"0{low}")  # no leading zeros


def test_the_date_pattern_admits_exactly_the_days_that_exist():
    pattern = re.compile(DATE_INPUT_PATTERN)
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    wrong = []
    for year in (1, 4, 100, 400, 1900, 2000, 2014, 2016, 9999):
        for month in range(1, 13):
            for day in range(0, 33):
                try:
                    exists = datetime.date(year, month, day) is not None
                except ValueError:
                    exists = False
                for text in (f"{year:04d}-{month:02d}-{day:02d}", f"{day} {months[month - 1]} {year:04d} 00:00 GMT"):
                    if bool(pattern.fullmatch(text)) != exists:
                        wrong.append(text)

    assert wrong == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 16 Sep 2014 17:01:15 +0000", datetime.datetime(2014, 9, 16, 17, 1, 15, tzinfo=datetime.UTC)),
        ("16 Sep 2014 19:01 +0200", datetime.datetime(2014, 9, 16, 17, 1, tzinfo=datetime.UTC)),
        ("2014-09-16", datetime.datetime(2014, 9, 16, tzinfo=datetime.UTC)),
        ("2014-09-16 17:01:15.5-0130", datetime.datetime(2014, 9, 16, 18, 31, 15, 500000, tzinfo=datetime.UTC)),
        ("0001-01-01T00:00:00+05:00", datetime.datetime.min.replace(tzinfo=datetime.UTC)),
        ("9999-12-31T23:59:59-05:00", datetime.datetime.max.replace(tzinfo=datetime.UTC)),
    ],
)
def test_dates_the_pattern_admits_are_read_in_utc(text, expected):
    assert parse_date_input(text) == expected


# --- links --------------------------------------------------------------------------------------------------------

OPERATION_IDS = {OPENAPI["paths"][path][method.lower()]["operationId"]: (method, path) for method, path in OPERATIONS}


def all_links():
    for method, path in OPERATIONS:
        for status, response in OPENAPI["paths"][path][method.lower()]["responses"].items():
            for name, link in response.get("links", {}).items():
                yield method, path, status, name, link


def test_every_link_names_a_documented_operation_and_all_its_path_parameters():
    links = list(all_links())

    assert len(links) > 100
    for method, path, _status, name, link in links:
        target = OPERATION_IDS[link["operationId"]]
        assert set(link["parameters"]) == set(template_params(target[1])), (method, path, name)
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name)
        for expression in link["parameters"].values():
            schemathesis_expressions.parse(expression)  # Schemathesis reads it


def test_a_created_cluster_links_to_every_operation_on_it_and_on_its_action():
    targets = {link["operationId"] for _, path, status, _, link in all_links() if (path, status) == (CLUSTERS, "201")}

    assert targets == {
        "v1_nodecluster_retrieve",
        "v1_nodecluster_partial_update",
        "v1_nodecluster_destroy",
        "v1_nodecluster_deploy_create",
        "v1_nodecluster_docker_upgrade_create",
        "v1_action_retrieve",
        "v1_action_logs_retrieve",
        "v1_action_cancel_create",
        "v1_action_retry_create",
    }


def evaluate(expression: str, response):
    """An OpenAPI runtime expression (with Schemathesis' `#regex:` extractor) on a real response; None where the
    answer does not name such an object (a cluster with no node yet, an action on a cluster for a node link)."""
    if expression.startswith("$response.header."):
        name, _, pattern = expression.removeprefix("$response.header.").partition("#regex:")
        value = response.get(name)
    else:
        pointer, _, pattern = expression.removeprefix("$response.body#").partition("#regex:")
        value = json.loads(response.content)
        for part in pointer.strip("/").split("/"):
            if isinstance(value, list):
                value = value[int(part)] if int(part) < len(value) else None
            else:
                value = value.get(part) if isinstance(value, dict) else None
    if value is not None and pattern:
        match = re.search(pattern, value)
        value = match.group(1) if match else None
    return value


LINK_SOURCES = [
    Call("create", "POST", CLUSTERS, 201, body=CREATE_BODY),
    Call("deploy", "POST", "/api/v1/nodecluster/{uuid}/deploy/", 202, uuid_of("init")),
    Call("deployed cluster", "GET", CLUSTER, 200, uuid_of("deployed")),
    Call("clusters", "GET", CLUSTERS, 200),
    Call("node", "GET", NODE, 200, uuid_of("zone_node")),
    Call("nodes", "GET", NODES, 200),
    Call("rename node", "PATCH", NODE, 200, uuid_of("node"), body={"nickname": "n"}),
    Call("action", "GET", ACTION, 200, uuid_of("finished_action")),
    Call("actions", "GET", ACTIONS, 200),
    Call("cancel", "POST", "/api/v1/action/{uuid}/cancel/", 202, uuid_of("open_action")),
    Call("regions", "GET", "/api/v1/region/", 200),
    Call("zones", "GET", "/api/v1/az/", 200),
    Call("node types", "GET", "/api/v1/nodetype/", 200),
    Call("providers", "GET", "/api/v1/provider/", 200),
]


@pytest.mark.parametrize("source", LINK_SOURCES, ids=call_id)
def test_links_lead_to_the_objects_the_answer_names(client, world, source):
    answer = source.run(client, world)
    assert answer.status_code == source.status, answer.content[:300]
    links = CHECKER.operation(source.method, source.template)["responses"][str(source.status)]["links"]

    followed = 0
    for name, link in links.items():
        method, template = OPERATION_IDS[link["operationId"]]
        params = {key: evaluate(expression, answer) for key, expression in link["parameters"].items()}
        if None in params.values():
            continue
        body = {"nickname": "linked"} if method == "PATCH" else NO_BODY

        response = send(client, method, template.format(**params), body=body)

        assert response.status_code in (200, 202, 409), (name, response.status_code, response.content[:300])
        CHECKER.check(method, template, response)
        followed += 1
    assert followed
