"""Optimistic concurrency: strong ETags of an object's JSON, `If-None-Match` on reads, `If-Match` on writes.

An ETag is the SHA-256 of the object's representation as the API renders it (its JSON with sorted keys). That needs
no version column and no bookkeeping, and it changes whenever anything a client can see changes, including what the
engine does (state, nodes, actions, `last_seen`): a client that wants to write only over what it read sends the ETag
back in `If-Match`, and gets a 412 if the object changed since.

`If-Match` is checked under the same row lock the write's service takes, in the project's lock order (a cluster
first; see `nodeclusters.services.locks`): the view's transaction locks the row, renders the object, compares, then
runs the write, whose service transaction is a savepoint inside it. Of two writers sending the same ETag at once,
exactly one passes; the other waits for the lock, finds another ETag and gets the 412, and its write does nothing.
"""

import functools
import hashlib
import json

from django.db import transaction
from django.http import HttpResponseNotModified
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from nodeclusters.services import locks

from .schema import ErrorSerializer

ETAG_HEADER = "ETag"


class PreconditionFailed(APIException):
    """`If-Match` named another version of the object than the current one."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = (
        "The object has changed since the ETag in If-Match was read; nothing was changed. "
        "GET it again and retry with its current ETag."
    )
    default_code = "precondition_failed"


def etag_of(representation) -> str:
    """The strong ETag of an object's JSON (a quoted SHA-256 of it with sorted keys)."""
    canonical = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest() + '"'


def if_match_passes(etag: str, header: str) -> bool:
    """RFC 9110's strong comparison: `*` matches any existing object; a weak ETag (`W/"..."`) never matches."""
    tags = parse_etags(header)
    if tags == ["*"]:
        return True
    return etag in tags  # a listed W/ tag differs from every strong one, ours included


def if_none_match_passes(etag: str, header: str) -> bool:
    """RFC 9110's weak comparison for reads: False (answer 304) when the client has this version already."""
    tags = parse_etags(header)
    if tags == ["*"]:
        return False
    return etag not in {tag.removeprefix("W/") for tag in tags}


def tag_response(response) -> str | None:
    """Give a 2xx answer carrying one object's JSON the ETag of that JSON; returns it (None for other answers)."""
    if not isinstance(response, Response) or not status.is_success(response.status_code):
        return None
    if not isinstance(response.data, dict) or "resource_uri" not in response.data:
        return None  # not an object's representation (e.g. a dry run's plan)
    etag = etag_of(response.data)
    response[ETAG_HEADER] = etag
    return etag


class ConditionalRequestsMixin:
    """For a viewset: an ETag on every answer carrying one object (detail reads, write answers), and a 304 with no
    body for a detail read whose `If-None-Match` names the object's current ETag."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        etag = tag_response(response)
        condition = request.headers.get("If-None-Match")
        if etag is None or condition is None or request.method not in ("GET", "HEAD"):
            return response
        if if_none_match_passes(etag, condition):
            return response
        not_modified = HttpResponseNotModified()
        for header in (ETAG_HEADER, "Vary"):
            if response.has_header(header):
                not_modified[header] = response[header]
        return not_modified


def _lock_cluster(uuid, owner) -> None:
    locks.lock_cluster(node_cluster_uuid=uuid, owner=owner)


def _lock_node(uuid, owner) -> None:
    locks.lock_node(node_uuid=uuid, owner=owner)


def _lock_action(uuid, owner) -> None:
    locks.lock_cluster_for_action(action_uuid=uuid, owner=owner)


#: Resource -> the lock its write services take, in the project's lock order (raises ObjectNotFound, a 404).
LOCKS = {"nodecluster": _lock_cluster, "node": _lock_node, "action": _lock_action}


def if_match(resource: str):
    """Decorate a viewset's write on the object its URL names (`uuid`): honour `If-Match`.

    Without the header the write runs as it is. With it, the object is row-locked, its current ETag compared, and
    the write runs in the same transaction; if the tag did not match, whatever it did is rolled back and the answer
    is its own error, or else PreconditionFailed (412).
    """
    lock = LOCKS[resource]

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, request, *args, **kwargs):
            condition = request.headers.get("If-Match")
            if condition is None:
                return method(self, request, *args, **kwargs)

            @locks.retried_atomic
            def guarded():
                lock(kwargs["uuid"], request.user)
                current = self.get_serializer(self.get_queryset().get(uuid=kwargs["uuid"])).data
                if if_match_passes(etag_of(current), condition):
                    return method(self, request, *args, **kwargs)
                # RFC 9110 (13.2.1): an answer other than a success (bad input, a state conflict) takes precedence
                # over the failed precondition. So the write runs, in a savepoint rolled back whatever it does: its
                # error is the answer if it has one, else 412; either way nothing changes.
                with transaction.atomic():
                    method(self, request, *args, **kwargs)
                    transaction.set_rollback(True)
                raise PreconditionFailed()

            return guarded()

        return wrapper

    return decorate


# --- the OpenAPI schema --------------------------------------------------------------------------------------------

IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description=(
        "The ETag of the object (cluster, node or action the URL names) as last read, quotes included, or `*`: "
        "the write runs only if the object is still that version, else 412 and nothing changes"
    ),
)
IF_NONE_MATCH_PARAMETER = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="ETags the client holds: 304 with no body if the object is still one of them",
)
ETAG_PARAMETER = OpenApiParameter(
    ETAG_HEADER,
    {"type": "string", "pattern": '^"[0-9a-f]{64}"$'},
    OpenApiParameter.HEADER,
    response=[200, 201, 202, 304],
    description="Strong ETag of the object in the answer: send it back in If-Match or If-None-Match",
)
NOT_MODIFIED = OpenApiResponse(description="Not modified: the object still has the ETag sent in If-None-Match")
PRECONDITION_FAILED = {
    412: OpenApiResponse(ErrorSerializer, description="If-Match named an older version of the object; GET it again")
}


def read_schema(**kwargs):
    """`extend_schema` for a detail read: If-None-Match, the ETag header and the 304."""
    return extend_schema(
        parameters=[IF_NONE_MATCH_PARAMETER, ETAG_PARAMETER],
        **{**kwargs, "responses": {**kwargs["responses"], 304: NOT_MODIFIED}},
    )
