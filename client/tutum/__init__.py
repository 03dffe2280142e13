"""Tutum's Python client for Python 3: python-tutum 0.21's node cluster API, drop-in, against a self-hosted server.

Configuration is module state, read at every request, as python-tutum had it::

    import tutum
    tutum.user = "admin"
    tutum.apikey = "5c0f1e..."
    tutum.base_url = "http://127.0.0.1:8000/api/v1/"

The environment gives the defaults: ``TUTUM_USER`` with ``TUTUM_APIKEY`` (or ``TUTUM_PASS``), ``TUTUM_AUTH`` (a whole
``Authorization`` header value, which wins over everything), ``TUTUM_REST_HOST`` / ``TUTUM_BASE_URL`` and
``TUTUM_STREAM_HOST`` / ``TUTUM_STREAM_URL``; ``~/.tutum`` (``[auth]`` with ``user`` and ``apikey``, or
``basic_auth``) is read when the environment names no user.
"""

from __future__ import annotations

import logging
import os

from tutum.api import auth
from tutum.api.action import Action
from tutum.api.events import TutumEvents
from tutum.api.exceptions import (
    NonUniqueIdentifier,
    ObjectNotFound,
    TutumApiError,
    TutumAuthError,
    TutumTimeoutError,
    TutumWaitError,
)
from tutum.api.node import Node
from tutum.api.nodeaz import AZ
from tutum.api.nodecluster import NodeCluster
from tutum.api.nodeprovider import Provider
from tutum.api.noderegion import Region
from tutum.api.nodetype import NodeType
from tutum.api.tag import Tag
from tutum.api.types import ActionState, NodeClusterState, NodeState, Tags, Timestamp
from tutum.api.utils import Utils

__version__ = "0.22.0"

__all__ = [
    "AZ",
    "Action",
    "ActionState",
    "Node",
    "NodeCluster",
    "NodeClusterState",
    "NodeState",
    "NodeType",
    "NonUniqueIdentifier",
    "ObjectNotFound",
    "Provider",
    "Region",
    "Tag",
    "Tags",
    "Timestamp",
    "TutumApiError",
    "TutumAuthError",
    "TutumEvents",
    "TutumTimeoutError",
    "TutumWaitError",
    "Utils",
    "auth",
]

#: `make run`'s addresses: the REST host on 8000, the stream server on the next port.
DEFAULT_REST_HOST = "http://127.0.0.1:8000"

_file_config = auth.load_config("~/.tutum")

#: Credentials. `user` and `apikey` make `Authorization: Basic base64(user:apikey)`; `tutum_auth` is sent as is.
user: str | None = os.environ.get("TUTUM_USER") or _file_config.get("user")
apikey: str | None = (
    os.environ.get("TUTUM_APIKEY")
    if os.environ.get("TUTUM_USER")
    else (_file_config.get("apikey") if _file_config.get("user") else None)
)
tutum_auth: str | None = os.environ.get("TUTUM_AUTH")
basic_auth: str | None = _file_config.get("basic_auth")
if os.environ.get("TUTUM_USER") and os.environ.get("TUTUM_PASS") and not os.environ.get("TUTUM_APIKEY"):
    basic_auth = auth.encode_basic(os.environ["TUTUM_USER"], os.environ["TUTUM_PASS"])
apikey_auth: str | None = (
    f"{_file_config['user']}:{_file_config['apikey']}"
    if _file_config.get("user") and _file_config.get("apikey")
    else None
)

#: Where the REST API and the Stream API live.
rest_host: str = os.environ.get("TUTUM_REST_HOST", DEFAULT_REST_HOST)
stream_host: str = os.environ.get("TUTUM_STREAM_HOST") or auth.stream_host_beside(rest_host)
base_url: str = os.environ.get("TUTUM_BASE_URL", "/".join([rest_host.rstrip("/"), "api/v1/"]))
stream_url: str = os.environ.get("TUTUM_STREAM_URL", "/".join([stream_host.rstrip("/"), "v1/"]))

#: Prepended to the User-Agent (the CLI sets "tutum-cli/<version>").
user_agent: str | None = None

#: Transport settings (new): seconds per request, retries of 429/503 and unreachable hosts, the longest wait.
timeout: float = float(os.environ.get("TUTUM_TIMEOUT", "30"))
max_retries: int = int(os.environ.get("TUTUM_MAX_RETRIES", "4"))
retry_max_wait: float = float(os.environ.get("TUTUM_RETRY_MAX_WAIT", "60"))

logger = logging.getLogger("python-tutum")
