"""`Idempotency-Key` on writes, as Stripe's API does it: the first answer is stored and replayed for 24 hours.

A write (POST, PUT, PATCH, DELETE) of an authenticated user that carries the header claims the key (per user)
before it runs. A repeat with the same key and the same request (method, path, query and JSON body) gets the stored
status, body and headers again with `Idempotent-Replayed: true`, and nothing runs a second time; the same key with
another request is a 422; a repeat while the first still runs is a 409. An answer of 500 or more (or an exception)
releases the key, so a retry runs; every other answer is stored. The check comes after authentication, permissions
and throttling: a 401 or 429 never touches a key.
"""

import hashlib
import json
import re
from urllib.parse import parse_qsl, urlencode

from django.http import HttpResponse
from django.http.request import RawPostDataException
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from nodeclusters.services import idempotency_keys

from .schema import ErrorSerializer

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
#: Visible ASCII: a UUID, a token, anything a client draws; no spaces, which proxies may trim or fold.
KEY_PATTERN = rf"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"
#: What a replay repeats besides status and body.
STORED_HEADERS = ("Content-Type", "X-Tutum-Action-URI", "ETag", "Location", "Retry-After")


class IdempotencyKeyInUse(APIException):
    """The key's first request has not answered yet."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        "A request with this Idempotency-Key is still being processed. Retry once it has finished to get its answer."
    )
    default_code = "idempotency_key_in_use"


class IdempotencyKeyReused(APIException):
    """The key was used for another request (another method, path, query or body)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was already used for a different request (method, path or body). "
        "Use a new key for a new request."
    )
    default_code = "idempotency_key_reused"


class IdempotentReplay(Exception):
    """Carries the stored answer out of `initial()` to `handle_exception()`: the view's handler must not run."""

    def __init__(self, response: HttpResponse):
        super().__init__("replayed")
        self.response = response


def request_key(request) -> str | None:
    """The request's key, None without one; a ValidationError (400) for a key that is empty, too long or not ASCII."""
    key = request.headers.get(KEY_HEADER)
    if key is None:
        return None
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError({KEY_HEADER: [f"At most {MAX_KEY_LENGTH} characters (got {len(key)})."]})
    if not re.fullmatch(KEY_PATTERN, key):
        raise ValidationError({KEY_HEADER: ["Use 1 to 255 visible ASCII characters, no spaces (e.g. a UUID)."]})
    return key


def _canonical_body(request) -> bytes:
    """The body as JSON with sorted keys (an empty body is `{}`, as the parser reads it); other bytes as they are."""
    try:
        raw = request.body
    except RawPostDataException:  # already parsed by someone: its data is what counts
        return json.dumps(request.data, sort_keys=True, separators=(",", ":")).encode()
    if not raw.strip():
        return b"{}"
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return raw


def request_fingerprint(request) -> str:
    """SHA-256 of what makes two requests the same one: method, path (one trailing slash), query and body."""
    path = request.path.rstrip("/") + "/"
    query = urlencode(sorted(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)))
    digest = hashlib.sha256()
    for part in (request.method.encode(), path.encode(), query.encode()):
        digest.update(part + b"\n")
    digest.update(_canonical_body(request))
    return digest.hexdigest()


def replay_response(row) -> HttpResponse:
    """The stored answer, marked as a replay."""
    response = HttpResponse(idempotency_keys.idempotency_key_answer_body(row), status=row.status_code)
    del response["Content-Type"]
    for name, value in row.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _stored_headers(response) -> dict:
    return {name: response[name] for name in STORED_HEADERS if response.has_header(name)}


class IdempotentWritesMixin:
    """For a DRF view: writes with an `Idempotency-Key` header run once per key; repeats replay the answer."""

    idempotency_key_id: int | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles first
        self.idempotency_key_id = None
        user = request.user
        if request.method not in WRITE_METHODS or user is None or not user.is_authenticated:
            return
        if getattr(self, request.method.lower(), None) is None:
            return  # no such operation here: the 405 is the answer, whatever the key
        key = request_key(request)
        if key is None:
            return
        fingerprint = request_fingerprint(request)
        claim = idempotency_keys.idempotency_key_claim(owner=user, key=key, fingerprint=fingerprint)
        if claim.claimed:
            self.idempotency_key_id = claim.row.pk
            return
        if claim.row.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if claim.row.status_code is None:
            raise IdempotencyKeyInUse()
        raise IdempotentReplay(replay_response(claim.row))

    def handle_exception(self, exc):
        if isinstance(exc, IdempotentReplay):
            return exc.response
        return super().handle_exception(exc)

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except BaseException:
            self._release_key()  # an exception no handler turned into an answer: nothing to store
            raise

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        key_id, self.idempotency_key_id = self.idempotency_key_id, None
        if key_id is not None:
            # Stored once rendered, with the headers and body the client gets (views may still change them).
            if hasattr(response, "add_post_render_callback"):
                response.add_post_render_callback(lambda rendered: _store(key_id, rendered))
            else:
                _store(key_id, response)
        return response

    def _release_key(self) -> None:
        key_id, self.idempotency_key_id = self.idempotency_key_id, None
        if key_id is not None:
            idempotency_keys.idempotency_key_release(key_id=key_id)


def _store(key_id: int, response) -> None:
    if response.status_code >= 500:
        idempotency_keys.idempotency_key_release(key_id=key_id)
        return
    idempotency_keys.idempotency_key_complete(
        key_id=key_id, status_code=response.status_code, headers=_stored_headers(response), body=response.content
    )


# --- the OpenAPI schema --------------------------------------------------------------------------------------------

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    KEY_HEADER,
    {"type": "string", "pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    OpenApiParameter.HEADER,
    description=(
        "Makes a retried write safe: a repeat with the same key and request within 24 hours gets the first answer "
        "again (with `Idempotent-Replayed: true`) and changes nothing; the same key with another request is a 422, "
        "and a repeat while the first still runs a 409. Keys are per user; e.g. a UUID."
    ),
)
IDEMPOTENT_REPLAYED_PARAMETER = OpenApiParameter(
    REPLAYED_HEADER,
    {"type": "string", "enum": ["true"]},
    OpenApiParameter.HEADER,
    response=[200, 201, 202],
    description="Present on a stored answer replayed for a repeated Idempotency-Key",
)
IDEMPOTENCY_ERRORS = {
    409: OpenApiResponse(
        ErrorSerializer,
        description="Not allowed in the object's current state, or a request with this Idempotency-Key still runs",
    ),
    422: OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used for a different request"),
}
