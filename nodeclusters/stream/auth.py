"""Stream API authentication, as middleware around the router: the same API keys as REST, read three ways.

python-tutum and go-tutum's events socket send an `Authorization` header (ApiKey or Basic); go-tutum's action
logs send `?user=<name>&token=<apikey>`; older clients sent `?auth=<the TUTUM_AUTH value, urlencoded>`.
The consumer decides what to do without a user: websockets are accepted and told `UNAUTHORIZED` (the only answer
python-tutum stops reconnecting on), SSE gets a 401.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.http import HttpRequest

from nodeclusters.api.authentication import FailedAuthenticationThrottle, parse_authorization
from nodeclusters.services import api_key_authenticate


def query_params(scope) -> dict[str, str]:
    """The last value of each query parameter (a client that repeats one means its last)."""
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


def credentials(scope) -> tuple[str, str] | None:
    """(username, API key) from the scope, or None when none were sent or they are malformed."""
    params = query_params(scope)
    headers = dict(scope.get("headers") or [])
    try:
        if headers.get(b"authorization"):
            return parse_authorization(headers[b"authorization"])
        if params.get("user") and params.get("token"):
            return params["user"], params["token"]
        if params.get("auth"):
            return parse_authorization(params["auth"])
    except ValueError:
        return None
    return None


def _address_request(scope) -> HttpRequest:
    """What the REST API's failed-login throttle reads of a request (its address), made from an ASGI scope."""
    request = HttpRequest()
    request.META["REMOTE_ADDR"] = (scope.get("client") or ("", 0))[0]
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-for")
    if forwarded:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded.decode("latin-1")
    return request


@database_sync_to_async
def _authenticate(scope, found: tuple[str, str] | None):
    """The user of these credentials, or None; failed guesses count against the address as on REST."""
    if found is None:
        return None
    request = _address_request(scope)
    throttle = FailedAuthenticationThrottle()
    if throttle.is_blocked(request):
        return None
    api_key = api_key_authenticate(username=found[0], raw_key=found[1])
    if api_key is None:
        throttle.record_failure(request)
        return None
    return api_key.user


class StreamAuthMiddleware:
    """Puts the authenticated user (or None) in `scope["user"]`, once per connection."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user = await _authenticate(scope, credentials(scope)) if scope["type"] in ("websocket", "http") else None
        return await self.inner({**scope, "user": user}, receive, send)
