"""The DigitalOcean driver, through the official `pydo` client and the v2 Droplets API."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import HttpLoggingPolicy, RetryPolicy

from providers.base import (
    CLUSTER_UUID_TAG,
    NODE_UUID_TAG,
    OWNER_TAG,
    AccountInfo,
    AuthFailed,
    CapacityUnavailable,
    Catalog,
    CatalogNodeType,
    CatalogRegion,
    Instance,
    InstanceState,
    InvalidProviderRequest,
    NodeDriver,
    NodeSpec,
    PermanentProviderError,
    Quota,
    QuotaExceeded,
    RateLimited,
    TransientProviderError,
)

# Droplet status values mapped onto the neutral states. "archive" is a droplet DigitalOcean has taken out of
# service for good, as far as we are concerned it is terminated.
DROPLET_STATES = {
    "new": InstanceState.PENDING,
    "active": InstanceState.RUNNING,
    "off": InstanceState.STOPPED,
    "archive": InstanceState.TERMINATED,
}

# DigitalOcean tags allow only letters, digits, colons, dashes and underscores, up to 255 characters, so our
# key/value tags become "key:value" with anything else replaced.
TAG_FORBIDDEN_CHARACTERS = re.compile(r"[^A-Za-z0-9:_-]")
TAG_MAX_LENGTH = 255

# What DigitalOcean's 422 messages say when the account is at its droplet limit ("creating this/these droplet(s)
# will exceed your droplet limit") or a size or region cannot take new droplets ("Size is not available in this
# region.", "Region is not available").
DROPLET_LIMIT_MESSAGE = re.compile(r"droplet limit", re.IGNORECASE)
UNAVAILABLE_MESSAGE = re.compile(r"(size|region).*(not available|unavailable)", re.IGNORECASE)

# Short timeouts so a hung API cannot hold a worker; the engine retries, not the client.
CONNECTION_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 30

# azure-core logs every request and response at INFO, which would bury the worker log under polling traffic.
# Its trace goes to this logger instead, quiet unless LOGGING turns it up.
http_logger = logging.getLogger("providers.digitalocean.http")
http_logger.setLevel(logging.WARNING)


def encode_tag(key: str, value: str) -> str:
    """One of our key/value tags as a DigitalOcean tag, e.g. "tutum-node-uuid:5516df0b-...".

    Kept out of the driver class because tests and the leak sweep need the same spelling.
    """
    return TAG_FORBIDDEN_CHARACTERS.sub("_", f"{key}:{value}")[:TAG_MAX_LENGTH]


class DigitalOceanDriver(NodeDriver):
    """DigitalOcean droplets. The region is the droplet's region slug ("lon1"), the node type its size slug."""

    name = "digitalocean"
    supports_docker_upgrade = False

    #: Droplets per page when listing; 200 is the API's maximum.
    PAGE_SIZE = 200

    def __init__(
        self,
        *,
        owner_tag: str = "tutum-api",
        provider_name: str | None = None,
        credentials: dict | None = None,
        token: str | None = None,
        image: str = "ubuntu-24-04-x64",
        endpoint: str | None = None,
    ) -> None:
        """`token` is an API token with droplet read/write scope, the server's own; `credentials` ({"token": ...})
        name a user's account instead. `endpoint` overrides the API's base URL (DIGITALOCEAN_API_URL)."""
        super().__init__(owner_tag=owner_tag, provider_name=provider_name)
        if credentials is not None:
            if not isinstance(credentials, dict) or not isinstance(credentials.get("token"), str):
                raise InvalidProviderRequest('digitalocean: credentials must be {"token": "<API token>"}')
            token = credentials["token"]
        self.token = token or ""
        self.image = image
        self.endpoint = endpoint or None
        # One pydo client per thread: its requests session is not documented as thread-safe and the engine
        # calls drivers from a thread pool.
        self._local = threading.local()

    def create_node(self, spec: NodeSpec) -> Instance:
        """Create one droplet for the node, or return the live one it already has.

        The API has no idempotency token, so the lookup by the node's tag is what keeps a retry from making a twin.
        DigitalOcean sizes fix the disk, so `disk_gb` is not sent.
        """
        existing = self.find_node(node_uuid=spec.node_uuid, region=spec.region)
        if existing is not None:
            return existing
        body = {
            "name": f"tutum-{spec.node_uuid}",
            "region": spec.region,
            "size": spec.node_type,
            "image": self.image,
            "tags": [encode_tag(key, value) for key, value in self.tags_for(spec).items()],
        }
        with _translated_errors("create droplet"):
            response = self._client().droplets.create(body=body)
        return self._to_instance(response["droplet"])

    def find_node(self, *, node_uuid: str, region: str) -> Instance | None:
        """The live droplet in the region tagged with this node uuid and our owner tag, or None."""
        owner = encode_tag(OWNER_TAG, self.owner_tag)
        droplets = [
            droplet
            for droplet in self._list_droplets(tag_name=encode_tag(NODE_UUID_TAG, node_uuid))
            if owner in droplet.get("tags", []) and self._is_live(droplet, region)
        ]
        # Two droplets for one node can only come from outside this driver; the oldest is the one to keep.
        droplets.sort(key=lambda droplet: (droplet.get("created_at") or "", droplet["id"]))
        return self._to_instance(droplets[0]) if droplets else None

    def get_node(self, *, instance_id: str, region: str) -> Instance | None:
        """The droplet with this id in the region, or None if DigitalOcean does not know it."""
        droplet_id = _droplet_id(instance_id)
        if droplet_id is None:
            return None
        with _translated_errors("get droplet"):
            # pydo returns the 404 error body instead of raising, so ask for the status code alongside the body.
            status, body = self._client().droplets.get(droplet_id, cls=_status_and_body)
        if status == 404 or not body or "droplet" not in body:
            return None
        droplet = body["droplet"]
        if _region_slug(droplet) != region:
            return None
        return self._to_instance(droplet)

    def destroy_node(self, *, instance_id: str, region: str) -> None:
        """Delete the droplet; a droplet DigitalOcean no longer knows (404) counts as deleted."""
        droplet_id = _droplet_id(instance_id)
        if droplet_id is None:
            return
        with _translated_errors("delete droplet"):
            # 204 and 404 both come back without raising; anything else raises and is translated.
            self._client().droplets.destroy(droplet_id)

    def list_nodes(self, *, region: str) -> list[Instance]:
        """Every live droplet in the region carrying our owner tag."""
        droplets = self._list_droplets(tag_name=encode_tag(OWNER_TAG, self.owner_tag))
        return [self._to_instance(droplet) for droplet in droplets if self._is_live(droplet, region)]

    def verify_account(self) -> AccountInfo:
        """GET /v2/account: the account's uuid, its email as the label, and its droplet limit."""
        with _translated_errors("get account"):
            account = (self._client().account.get() or {}).get("account") or {}
        if not account.get("uuid"):
            raise TransientProviderError("digitalocean: get account answered without an account")
        limits = {"droplet_limit": account.get("droplet_limit")} if account.get("droplet_limit") is not None else {}
        return AccountInfo(account_id=account["uuid"], label=account.get("email") or "", limits=limits)

    def fetch_catalog(self) -> Catalog:
        """/v2/regions and /v2/sizes, every page: regions, and sizes with vCPUs, memory, disk, prices and regions."""
        regions = tuple(
            CatalogRegion(
                name=region["slug"], label=region.get("name") or region["slug"], available=bool(region.get("available"))
            )
            for region in self._list_all("list regions", "regions", self._client().regions.list)
        )
        node_types = tuple(
            CatalogNodeType(
                name=size["slug"],
                label=_size_label(size),
                cpu=int(size.get("vcpus") or 0),
                memory_mb=int(size.get("memory") or 0),
                disk_gb=int(size.get("disk") or 0),
                regions=tuple(sorted(size.get("regions") or [])),
                price_monthly=_decimal(size.get("price_monthly")),
                price_hourly=_decimal(size.get("price_hourly")),
                available=bool(size.get("available")),
            )
            for size in self._list_all("list sizes", "sizes", self._client().sizes.list)
        )
        return Catalog(regions=regions, node_types=node_types)

    def get_quota(self, *, region: str) -> Quota | None:
        """The account's droplet limit (account-wide, whatever the region) and how many droplets it has."""
        info = self.verify_account()
        with _translated_errors("count droplets"):
            body = self._client().droplets.list(per_page=1, page=1) or {}
        in_use = int((body.get("meta") or {}).get("total") or 0)
        return Quota(unit="droplets", limit=info.limits.get("droplet_limit"), in_use=in_use)

    def _list_all(self, operation: str, key: str, list_page) -> list[dict]:
        """Every item of a paged list endpoint (`links.pages.next` says whether another page follows)."""
        items: list[dict] = []
        page = 1
        while True:
            with _translated_errors(operation):
                body = list_page(per_page=self.PAGE_SIZE, page=page) or {}
            items.extend(body.get(key) or [])
            if not ((body.get("links") or {}).get("pages") or {}).get("next"):
                return items
            page += 1

    def _client(self):
        """This thread's pydo client, with azure-core's own retries turned off."""
        if not self.token:
            raise AuthFailed("digitalocean: no API token configured (set DIGITALOCEAN_TOKEN)")
        client = getattr(self._local, "client", None)
        if client is None:
            # Imported here: pydo is a large generated package and only deployments using DigitalOcean need it.
            import pydo

            options: dict[str, Any] = {
                # The engine owns retries and backoff. azure-core's default policy would retry 429s and 5xx up to
                # ten times, sleeping for Retry-After in between, inside a worker's time limit.
                "retry_policy": RetryPolicy.no_retries(),
                "connection_timeout": CONNECTION_TIMEOUT_SECONDS,
                "read_timeout": READ_TIMEOUT_SECONDS,
                "http_logging_policy": HttpLoggingPolicy(logger=http_logger),
            }
            if self.endpoint:
                options["endpoint"] = self.endpoint
            client = self._local.client = pydo.Client(token=self.token, **options)
        return client

    def _list_droplets(self, *, tag_name: str) -> list[dict]:
        """Every droplet carrying the tag, across all pages."""
        client = self._client()
        return self._list_all(
            "list droplets", "droplets", lambda **paging: client.droplets.list(tag_name=tag_name, **paging)
        )

    @staticmethod
    def _is_live(droplet: dict, region: str) -> bool:
        """Whether the droplet is in the region and not archived."""
        return _region_slug(droplet) == region and droplet.get("status") != "archive"

    def _to_instance(self, droplet: dict) -> Instance:
        """The provider-neutral view of a droplet."""
        tags = {}
        for tag in droplet.get("tags") or []:
            key, _, value = tag.partition(":")
            tags[key] = value
        networks = droplet.get("networks") or {}
        return Instance(
            instance_id=str(droplet["id"]),
            state=DROPLET_STATES.get(droplet.get("status", ""), InstanceState.UNKNOWN),
            region=_region_slug(droplet),
            node_uuid=tags.get(NODE_UUID_TAG),
            cluster_uuid=tags.get(CLUSTER_UUID_TAG),
            public_ip=_address(networks, "public"),
            availability_zone=None,
            extra={
                "name": droplet.get("name"),
                "status": droplet.get("status"),
                "size_slug": droplet.get("size_slug"),
                "image": (droplet.get("image") or {}).get("slug"),
                "memory_mb": droplet.get("memory"),
                "vcpus": droplet.get("vcpus"),
                "disk_gb": droplet.get("disk"),
                "private_ip": _address(networks, "private"),
                "created_at": droplet.get("created_at"),
                "tags": list(droplet.get("tags") or []),
            },
        )


@contextmanager
def _translated_errors(operation: str) -> Iterator[None]:
    """Re-raise pydo/azure-core errors from the block as provider errors, chained to the original."""
    try:
        yield
    except HttpResponseError as error:
        status = error.status_code or 0
        detail = _error_detail(error)
        raise _error_class(status, detail)(
            f"digitalocean: {operation} failed with HTTP {status}{_retry_hint(error)}: {detail}"
        ) from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientProviderError(f"digitalocean: {operation} failed: {type(error).__name__}: {error}") from error
    except json.JSONDecodeError as error:
        # pydo decodes bodies itself; a non-JSON 2xx is a proxy or a cut-off answer, worth another try.
        raise TransientProviderError(f"digitalocean: {operation} got an unreadable answer: {error}") from error
    except AzureError as error:
        raise PermanentProviderError(f"digitalocean: {operation} failed: {type(error).__name__}: {error}") from error


def _error_class(status: int, detail: str) -> type[TransientProviderError | PermanentProviderError]:
    """The provider error class for an HTTP error status and DigitalOcean's message."""
    if status == 429:
        return RateLimited
    if status >= 500 or status < 400:
        # Under 400 here means an answer we could not read (a proxy's HTML page, a cut-off body).
        return TransientProviderError
    if status in (401, 403):
        return AuthFailed
    if status == 422 and DROPLET_LIMIT_MESSAGE.search(detail):
        return QuotaExceeded
    if status == 422 and UNAVAILABLE_MESSAGE.search(detail):
        return CapacityUnavailable
    return InvalidProviderRequest


def _retry_hint(error: HttpResponseError) -> str:
    """ ", retry after 60s" when the answer carries a Retry-After header."""
    retry_after = error.response.headers.get("Retry-After") if error.response is not None else None
    return f", retry after {retry_after}s" if retry_after else ""


def _error_detail(error: HttpResponseError) -> str:
    """DigitalOcean's error id and message ("unauthorized: Unable to authenticate you"), else azure-core's text."""
    try:
        body = error.response.json() if error.response is not None else None
    except Exception:  # any unreadable body falls back to azure-core's generic message
        body = None
    if isinstance(body, dict) and body.get("message"):
        return f"{body.get('id', 'error')}: {body['message']}"
    return error.message or str(error)


def _decimal(value) -> Decimal | None:
    """A price from the API (a JSON number) as an exact Decimal, via its text so 0.00893 stays 0.00893."""
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _size_label(size: dict) -> str:
    """ "Basic 1 vCPU / 1 GB / 25 GB", from the size's description, vCPUs, memory and disk."""
    memory = int(size.get("memory") or 0)
    memory_label = f"{memory} MB" if memory < 1024 else f"{memory // 1024} GB"
    description = size.get("description") or size["slug"]
    return f"{description} {size.get('vcpus')} vCPU / {memory_label} / {size.get('disk')} GB"


def _status_and_body(pipeline_response, body, headers) -> tuple[int, Any]:
    """A pydo `cls` hook returning the HTTP status with the decoded body."""
    return pipeline_response.http_response.status_code, body


def _droplet_id(instance_id: str) -> int | None:
    """The droplet id as the API wants it, or None for an id no droplet can have."""
    try:
        droplet_id = int(instance_id)
    except (TypeError, ValueError):
        return None
    return droplet_id if droplet_id > 0 else None


def _region_slug(droplet: dict) -> str:
    """The droplet's region slug; the API nests it in a region object."""
    return (droplet.get("region") or {}).get("slug") or ""


def _address(networks: dict, kind: str) -> str | None:
    """The droplet's first IPv4 address of this kind ("public" or "private")."""
    for network in networks.get("v4") or []:
        if network.get("type") == kind and network.get("ip_address"):
            return network["ip_address"]
    return None
