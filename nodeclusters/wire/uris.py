"""Tutum resource URIs (`/api/v1/region/digitalocean/lon1/`): building them and parsing them back."""

import re
import uuid as uuid_module
from urllib.parse import urlsplit

API_PREFIX = "/api/v1/"

# Each resource's URI shape; the groups are the lookup values, in order. NUL never belongs in a name (and
# PostgreSQL refuses it in a query), so it never matches.
_PATTERNS = {
    "provider": re.compile(r"^/api/v1/provider/(?P<name>[^/\x00]+)/?$"),
    "region": re.compile(r"^/api/v1/region/(?P<provider>[^/\x00]+)/(?P<name>[^/\x00]+)/?$"),
    "az": re.compile(r"^/api/v1/az/(?P<provider>[^/\x00]+)/(?P<region>[^/\x00]+)/(?P<name>[^/\x00]+)/?$"),
    "nodetype": re.compile(r"^/api/v1/nodetype/(?P<provider>[^/\x00]+)/(?P<name>[^/\x00]+)/?$"),
    "nodecluster": re.compile(r"^/api/v1/nodecluster/(?P<uuid>[^/\x00]+)/?$"),
    "node": re.compile(r"^/api/v1/node/(?P<uuid>[^/\x00]+)/?$"),
    "action": re.compile(r"^/api/v1/action/(?P<uuid>[^/\x00]+)/?$"),
}

EXAMPLES = {
    "provider": "/api/v1/provider/digitalocean/",
    "region": "/api/v1/region/digitalocean/lon1/",
    "az": "/api/v1/az/aws/us-east-1/us-east-1a/",
    "nodetype": "/api/v1/nodetype/digitalocean/1gb/",
    "nodecluster": "/api/v1/nodecluster/5516df0b-721e-4470-b350-741ff22e63a0/",
    "node": "/api/v1/node/fc1a5bb9-17f5-4819-b667-8c7cd819e949/",
    "action": "/api/v1/action/6246c558-976c-4df6-ba60-eb1a344a17af/",
}


class InvalidResourceURI(ValueError):
    """A string that is not a URI of the expected resource type."""


def parse(kind: str, value) -> dict[str, str]:
    """The lookup values in a resource URI of `kind`; full URLs (`https://host/api/v1/...`) are accepted too."""
    if not isinstance(value, str) or not value:
        raise InvalidResourceURI(f"Expected a resource URI such as {EXAMPLES[kind]}")
    try:
        path = urlsplit(value).path
    except ValueError:  # e.g. "http://[": not a URL at all
        raise InvalidResourceURI(
            f"{value!r} is not a {kind} resource URI; expected one like {EXAMPLES[kind]}"
        ) from None
    match = _PATTERNS[kind].match(path)
    if match is None:
        raise InvalidResourceURI(f"{value!r} is not a {kind} resource URI; expected one like {EXAMPLES[kind]}")
    found = match.groupdict()
    if "uuid" in found:
        try:
            found["uuid"] = str(uuid_module.UUID(found["uuid"]))
        except ValueError:
            raise InvalidResourceURI(f"{value!r} does not end in a valid UUID") from None
    return found


def provider_uri(name: str) -> str:
    return f"{API_PREFIX}provider/{name}/"


def region_uri(provider_name: str, name: str) -> str:
    return f"{API_PREFIX}region/{provider_name}/{name}/"


def az_uri(provider_name: str, region_name: str, name: str) -> str:
    return f"{API_PREFIX}az/{provider_name}/{region_name}/{name}/"


def nodetype_uri(provider_name: str, name: str) -> str:
    return f"{API_PREFIX}nodetype/{provider_name}/{name}/"


def nodecluster_uri(uuid) -> str:
    return f"{API_PREFIX}nodecluster/{uuid}/"


def node_uri(uuid) -> str:
    return f"{API_PREFIX}node/{uuid}/"


def action_uri(uuid) -> str:
    return f"{API_PREFIX}action/{uuid}/"
