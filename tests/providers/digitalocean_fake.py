"""An in-memory DigitalOcean API v2 (droplets, account, regions, sizes), served through `responses`.

Bodies follow the shapes DigitalOcean documents and returns (droplet objects, `links`/`meta` for lists, the
`{"id", "message"}` error body, the 422 answers for the droplet limit and an unavailable size), so the driver is
tested against what it will really parse.
"""

from __future__ import annotations

import itertools
import json
import re
from urllib.parse import parse_qs, urlparse

import responses

API = "https://api.digitalocean.com"
DROPLET_URL = re.compile(rf"^{re.escape(API)}/v2/droplets/(?P<droplet_id>[^/?]+)$")
DROPLETS_URL = re.compile(rf"^{re.escape(API)}/v2/droplets(\?.*)?$")
ACCOUNT_URL = re.compile(rf"^{re.escape(API)}/v2/account$")
REGIONS_URL = re.compile(rf"^{re.escape(API)}/v2/regions(\?.*)?$")
SIZES_URL = re.compile(rf"^{re.escape(API)}/v2/sizes(\?.*)?$")

NOT_FOUND = {"id": "not_found", "message": "The resource you were accessing could not be found."}
UNAUTHORIZED = {"id": "Unauthorized", "message": "Unable to authenticate you"}
# DigitalOcean's answers when the account is at its droplet limit, and when a size cannot be had in a region.
DROPLET_LIMIT_REACHED = {
    "id": "unprocessable_entity",
    "message": "creating this/these droplet(s) will exceed your droplet limit",
}
SIZE_UNAVAILABLE = {"id": "unprocessable_entity", "message": "Size is not available in this region."}
REGION_UNAVAILABLE = {"id": "unprocessable_entity", "message": "Region is not available"}

SIZES = {
    "s-1vcpu-1gb": {
        "memory": 1024,
        "vcpus": 1,
        "disk": 25,
        "price_monthly": 6.0,
        "price_hourly": 0.00893,
        "description": "Basic",
    },
    "s-2vcpu-4gb": {
        "memory": 4096,
        "vcpus": 2,
        "disk": 80,
        "price_monthly": 24.0,
        "price_hourly": 0.03571,
        "description": "Basic",
    },
    # Offered in New York only: creating one in London is DigitalOcean's "Size is not available in this region."
    "c-2": {
        "memory": 4096,
        "vcpus": 2,
        "disk": 25,
        "price_monthly": 42.0,
        "price_hourly": 0.0625,
        "description": "CPU-Optimized",
        "regions": ["nyc3"],
    },
}
REGIONS = {"lon1": "London 1", "nyc3": "New York 3", "ams3": "Amsterdam 3"}
# Listed by /v2/regions but closed to new droplets, as sfo1 is today.
UNAVAILABLE_REGIONS = {"sfo1": "San Francisco 1"}


class FakeDigitalOcean:
    """Droplets kept in a dict; a new droplet reads as "new" the first time and "active" after, like a boot."""

    def __init__(self, mock: responses.RequestsMock, *, token: str = "test-token", droplet_limit: int = 25) -> None:
        """Register the endpoints on `mock`; requests without `token` get a 401. Creating a droplet past
        `droplet_limit` live droplets gets DigitalOcean's 422."""
        self.mock = mock
        self.token = token
        self.droplet_limit = droplet_limit
        self.droplets: dict[int, dict] = {}
        self.create_bodies: list[dict] = []
        #: The bearer token of every request, in order (None when it had no Authorization header).
        self.bearer_tokens: list[str | None] = []
        self._ids = itertools.count(3164444)
        mock.add_callback(responses.POST, DROPLETS_URL, callback=self._create)
        mock.add_callback(responses.GET, DROPLETS_URL, callback=self._list)
        mock.add_callback(responses.GET, DROPLET_URL, callback=self._get)
        mock.add_callback(responses.DELETE, DROPLET_URL, callback=self._delete)
        mock.add_callback(responses.GET, ACCOUNT_URL, callback=self._account)
        mock.add_callback(responses.GET, REGIONS_URL, callback=self._regions)
        mock.add_callback(responses.GET, SIZES_URL, callback=self._sizes)

    def add_droplet(self, *, name: str, region: str, size: str = "s-1vcpu-1gb", tags: list[str] = ()) -> dict:
        """A droplet somebody else made (no owner tag unless given), already active."""
        droplet = self._droplet(name=name, region=region, size=size, tags=list(tags))
        self._boot(droplet)
        return droplet

    def _create(self, request):
        """POST /v2/droplets"""
        if (denied := self._deny(request)) is not None:
            return denied
        body = json.loads(request.body)
        self.create_bodies.append(body)
        if body.get("region") in UNAVAILABLE_REGIONS:
            return _json(422, REGION_UNAVAILABLE)
        if body.get("size") not in SIZES or body.get("region") not in REGIONS:
            return _json(422, {"id": "unprocessable_entity", "message": "You specified an invalid size or region."})
        if body["region"] not in _size_regions(body["size"]):
            return _json(422, SIZE_UNAVAILABLE)
        if len(self.droplets) >= self.droplet_limit:
            return _json(422, DROPLET_LIMIT_REACHED)
        droplet = self._droplet(name=body["name"], region=body["region"], size=body["size"], tags=body.get("tags", []))
        droplet["image"]["slug"] = body.get("image")
        return _json(
            202,
            {
                "droplet": droplet,
                "links": {
                    "actions": [
                        {"id": 7515, "rel": "create", "href": f"{API}/v2/actions/7515"},
                    ]
                },
            },
        )

    def _list(self, request):
        """GET /v2/droplets?tag_name=...&page=...&per_page=..."""
        if (denied := self._deny(request)) is not None:
            return denied
        query = parse_qs(urlparse(request.url).query)
        tag = query.get("tag_name", [None])[0]
        per_page = int(query.get("per_page", ["20"])[0])
        page = int(query.get("page", ["1"])[0])
        matching = [droplet for droplet in self.droplets.values() if tag is None or tag in droplet["tags"]]
        for droplet in matching:
            self._boot(droplet)
        chunk = matching[(page - 1) * per_page : page * per_page]
        pages = {}
        if page * per_page < len(matching):
            pages["next"] = f"{API}/v2/droplets?page={page + 1}&per_page={per_page}"
            pages["last"] = f"{API}/v2/droplets?page={-(-len(matching) // per_page)}&per_page={per_page}"
        return _json(
            200, {"droplets": chunk, "links": {"pages": pages} if pages else {}, "meta": {"total": len(matching)}}
        )

    def _get(self, request):
        """GET /v2/droplets/{id}"""
        if (denied := self._deny(request)) is not None:
            return denied
        droplet = self.droplets.get(_droplet_id(request))
        if droplet is None:
            return _json(404, NOT_FOUND)
        response = _json(200, {"droplet": droplet})
        self._boot(droplet)
        return response

    def _delete(self, request):
        """DELETE /v2/droplets/{id}"""
        if (denied := self._deny(request)) is not None:
            return denied
        if self.droplets.pop(_droplet_id(request), None) is None:
            return _json(404, NOT_FOUND)
        return 204, {"ratelimit-limit": "5000", "ratelimit-remaining": "4998", "ratelimit-reset": "1444931833"}, ""

    def _account(self, request):
        """GET /v2/account"""
        if (denied := self._deny(request)) is not None:
            return denied
        account = {
            "droplet_limit": self.droplet_limit,
            "floating_ip_limit": 3,
            "volume_limit": 100,
            "email": "sammy@example.com",
            "name": "Sammy the Shark",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "email_verified": True,
            "status": "active",
            "status_message": "",
            "team": {"uuid": "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", "name": "My Team"},
        }
        return _json(200, {"account": account})

    def _regions(self, request):
        """GET /v2/regions?page=...&per_page=..."""
        if (denied := self._deny(request)) is not None:
            return denied
        regions = [
            {
                "name": name,
                "slug": slug,
                "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
                "available": slug in REGIONS,
                "sizes": [size for size in SIZES if slug in _size_regions(size)],
            }
            for slug, name in {**REGIONS, **UNAVAILABLE_REGIONS}.items()
        ]
        return self._page(request, "regions", regions)

    def _sizes(self, request):
        """GET /v2/sizes?page=...&per_page=..."""
        if (denied := self._deny(request)) is not None:
            return denied
        sizes = [
            {
                "slug": slug,
                "memory": size["memory"],
                "vcpus": size["vcpus"],
                "disk": size["disk"],
                "transfer": 1.0,
                "price_monthly": size["price_monthly"],
                "price_hourly": size["price_hourly"],
                "regions": _size_regions(slug),
                "available": True,
                "description": size["description"],
                "disk_info": [{"type": "local", "size": {"amount": size["disk"], "unit": "gib"}}],
            }
            for slug, size in SIZES.items()
        ]
        return self._page(request, "sizes", sizes)

    @staticmethod
    def _page(request, key: str, items: list[dict]):
        """One page of a list answer, with `links.pages.next` while more follow and `meta.total`."""
        url = urlparse(request.url)
        query = parse_qs(url.query)
        per_page = int(query.get("per_page", ["20"])[0])
        page = int(query.get("page", ["1"])[0])
        pages = {}
        if page * per_page < len(items):
            pages["next"] = f"{API}{url.path}?page={page + 1}&per_page={per_page}"
        return _json(
            200,
            {
                key: items[(page - 1) * per_page : page * per_page],
                "links": {"pages": pages},
                "meta": {"total": len(items)},
            },
        )

    def _deny(self, request):
        """A 401 unless the request carries our bearer token."""
        authorization = request.headers.get("Authorization")
        self.bearer_tokens.append(authorization.removeprefix("Bearer ") if authorization else None)
        if authorization != f"Bearer {self.token}":
            return _json(401, UNAUTHORIZED)
        return None

    def _droplet(self, *, name: str, region: str, size: str, tags: list[str]) -> dict:
        """A new droplet object as the API returns it right after create."""
        droplet_id = next(self._ids)
        droplet = {
            "id": droplet_id,
            "name": name,
            "memory": SIZES[size]["memory"],
            "vcpus": SIZES[size]["vcpus"],
            "disk": SIZES[size]["disk"],
            "locked": False,
            "status": "new",
            "kernel": None,
            "created_at": f"2024-05-01T10:{droplet_id % 60:02d}:00Z",
            "features": ["monitoring", "droplet_agent"],
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": [],
            "image": {
                "id": 129211873,
                "name": "24.04 (LTS) x64",
                "distribution": "Ubuntu",
                "slug": "ubuntu-24-04-x64",
                "public": True,
                "regions": list(REGIONS),
                "created_at": "2023-04-25T15:16:59Z",
                "min_disk_size": 7,
                "type": "base",
                "size_gigabytes": 2.36,
                "description": "Ubuntu 24.04 x64",
                "tags": [],
                "status": "available",
            },
            "volume_ids": [],
            "size": {
                "slug": size,
                "memory": SIZES[size]["memory"],
                "vcpus": SIZES[size]["vcpus"],
                "disk": SIZES[size]["disk"],
                "transfer": 1.0,
                "price_monthly": SIZES[size]["price_monthly"],
                "price_hourly": SIZES[size]["price_hourly"],
                "regions": _size_regions(size),
                "available": True,
                "description": "Basic",
            },
            "size_slug": size,
            "networks": {"v4": [], "v6": []},
            "region": {
                "name": REGIONS[region],
                "slug": region,
                "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
                "available": True,
                "sizes": list(SIZES),
            },
            "tags": tags,
            "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        }
        self.droplets[droplet_id] = droplet
        return droplet

    @staticmethod
    def _boot(droplet: dict) -> None:
        """Make the droplet active with its addresses, as the next read after create would find it."""
        if droplet["status"] != "new":
            return
        droplet["status"] = "active"
        last = droplet["id"] % 250 + 2
        droplet["networks"]["v4"] = [
            {"ip_address": f"10.131.0.{last}", "netmask": "255.255.0.0", "gateway": "10.131.0.1", "type": "private"},
            {"ip_address": f"203.0.113.{last}", "netmask": "255.255.240.0", "gateway": "203.0.113.1", "type": "public"},
        ]


def _size_regions(size: str) -> list[str]:
    """The regions offering the size: those it names, else every available region."""
    return list(SIZES[size].get("regions") or REGIONS)


def _droplet_id(request) -> int | None:
    """The droplet id in the request path, None if it is not a number."""
    match = DROPLET_URL.match(request.url)
    try:
        return int(match["droplet_id"])
    except (TypeError, ValueError):
        return None


def _json(status: int, body: dict):
    """A `responses` callback answer with DigitalOcean's rate limit headers."""
    headers = {
        "content-type": "application/json; charset=utf-8",
        "ratelimit-limit": "5000",
        "ratelimit-remaining": "4999",
        "ratelimit-reset": "1444931833",
    }
    return status, headers, json.dumps(body)
