"""`Utils`: find an object by resource URI, or by long uuid, short uuid or name as the CLI's users type them."""

from __future__ import annotations

import re

from .action import Action
from .exceptions import NonUniqueIdentifier, ObjectNotFound, TutumApiError, TutumAuthError
from .node import Node
from .nodeaz import AZ
from .nodecluster import NodeCluster
from .nodeprovider import Provider
from .noderegion import Region
from .nodetype import NodeType

UUID4 = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}", re.I)

#: resource type in a URI -> class; the catalog's URIs carry more than one segment after it.
RESOURCE_TYPES = {
    "nodecluster": NodeCluster,
    "node": Node,
    "action": Action,
    "provider": Provider,
    "region": Region,
    "az": AZ,
    "nodetype": NodeType,
}


def is_uuid4(identifier: str) -> bool:
    return bool(UUID4.match(identifier))


def _fetch_remote(cls, identifier: str, noun: str, *, by_name: bool, raise_exceptions: bool):
    """python-tutum's lookup: a long uuid is fetched; otherwise `uuid__startswith=`, then (if allowed) `name=`."""
    try:
        if is_uuid4(identifier):
            try:
                return cls.fetch(identifier)
            except TutumAuthError:
                raise
            except TutumApiError as error:
                raise ObjectNotFound(f"Cannot find {noun} with the identifier '{identifier}'") from error
        matches = cls.list(uuid__startswith=identifier)
        if not matches and by_name:
            matches = cls.list(name=identifier)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ObjectNotFound(f"Cannot find {noun} with the identifier '{identifier}'")
        raise NonUniqueIdentifier(
            f"More than one {noun.split(' ', 1)[1]} has the same identifier, please use the long uuid"
        )
    except (NonUniqueIdentifier, ObjectNotFound) as error:
        if not raise_exceptions:
            return error
        raise


class Utils:
    @staticmethod
    def fetch_by_resource_uri(uri: str):
        """The object a resource URI names (`/api/v1/nodecluster/<uuid>/`, `/api/v1/region/aws/us-east-1/`, ...)."""
        if not isinstance(uri, str):
            raise TutumApiError("Uri format is invalid")
        terms = [term for term in uri.strip("/").split("/") if term]
        if len(terms) < 2:
            raise TutumApiError("Uri format is invalid")
        if "v1" in terms:
            terms = terms[terms.index("v1") + 1 :]
        cls = RESOURCE_TYPES.get(terms[0].lower())
        if cls is None or len(terms) < 2:
            raise TutumApiError("Unsupported resource type. Only support: " + ", ".join(sorted(RESOURCE_TYPES)))
        return cls.fetch("/".join(terms[1:]))

    @staticmethod
    def fetch_remote_nodecluster(identifier: str, raise_exceptions: bool = True):
        return _fetch_remote(NodeCluster, identifier, "a node cluster", by_name=True, raise_exceptions=raise_exceptions)

    @staticmethod
    def fetch_remote_node(identifier: str, raise_exceptions: bool = True):
        return _fetch_remote(Node, identifier, "a node", by_name=False, raise_exceptions=raise_exceptions)

    @staticmethod
    def fetch_remote_action(identifier: str, raise_exceptions: bool = True):
        return _fetch_remote(Action, identifier, "an action", by_name=False, raise_exceptions=raise_exceptions)
