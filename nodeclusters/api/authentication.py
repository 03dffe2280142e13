"""Tutum's auth header (`ApiKey <username>:<apikey>` or Basic), throttled per key, failed attempts per address."""

import base64
import binascii

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.throttling import SimpleRateThrottle

from nodeclusters.models import ApiKey
from nodeclusters.services import api_key_authenticate

_BAD_CREDENTIALS = "Invalid username or API key."
_HOW_TO = "Send 'Authorization: ApiKey <username>:<apikey>' or HTTP Basic auth with the API key as password."


def parse_authorization(header: bytes | str) -> tuple[str, str]:
    """(username, API key) from an `ApiKey user:key` or `Basic base64(user:key)` value; ValueError says what is off.

    The REST API and the Stream API (header or `?auth=`) read credentials with this one function.
    """
    try:
        text = header.decode("latin-1") if isinstance(header, bytes) else header
    except UnicodeDecodeError:
        raise ValueError(f"Malformed Authorization header. {_HOW_TO}") from None
    scheme, _, credentials = text.strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "basic":
        try:
            credentials = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError(f"Malformed Basic credentials. {_HOW_TO}") from None
    elif scheme != "apikey":
        raise ValueError(f"Unsupported authorization scheme {scheme!r}. {_HOW_TO}")
    username, separator, key = credentials.partition(":")
    if not separator or not username or not key:
        raise ValueError(f"Credentials must be <username>:<apikey>. {_HOW_TO}")
    return username, key


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates a user by one of their API keys; `request.auth` is the `ApiKey` row."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        try:
            username, key = parse_authorization(header)
        except ValueError as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        # DRF throttles run after authentication, so failed guesses are counted here, per client address. An address
        # past its limit is refused before the check: answering its next guess would let a right one through.
        throttle = FailedAuthenticationThrottle()
        if throttle.is_blocked(request):
            raise exceptions.Throttled(wait=throttle.wait())
        api_key = api_key_authenticate(username=username, raw_key=key)
        if api_key is None:
            throttle.record_failure(request)
            raise exceptions.AuthenticationFailed(_BAD_CREDENTIALS)
        return api_key.user, api_key

    def authenticate_header(self, request) -> str:
        # Any value here turns "not authenticated" into 401 (DRF answers 403 without one).
        return 'ApiKey realm="api"'


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (per client IP before authentication), rate from the `api_key` setting."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read on every request (not frozen at import like DRF's default) so the setting can change at runtime.
        return settings.API_THROTTLE_RATE or None

    def get_cache_key(self, request, view):
        ident = f"key-{request.auth.pk}" if isinstance(request.auth, ApiKey) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class FailedAuthenticationThrottle(SimpleRateThrottle):
    """Failed credential checks per client address, at `API_FAILED_AUTH_RATE`; counted while authenticating.

    The address is REMOTE_ADDR, or X-Forwarded-For's entry added by the nearest of `NUM_PROXIES` trusted proxies
    (DRF's `get_ident`): with no proxy declared, a client's own X-Forwarded-For is ignored, so it cannot pose as
    a new address for every guess.
    """

    scope = "failed_auth"

    def get_rate(self) -> str | None:
        # Never more generous than the request rate, and off when throttling is (API_THROTTLE_RATE empty).
        request_rate = settings.API_THROTTLE_RATE
        failed_rate = settings.API_FAILED_AUTH_RATE or request_rate
        if not request_rate:
            return None
        return min(failed_rate, request_rate, key=self._per_second)

    def _per_second(self, rate: str) -> float:
        number, seconds = self.parse_rate(rate)
        return number / seconds

    def get_cache_key(self, request, view):
        # Never touch request.auth here: it is being computed, and reading it would authenticate again.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def is_blocked(self, request) -> bool:
        """Whether this address has used up its failed attempts for now; records nothing (`wait()` then works)."""
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) >= self.num_requests

    def record_failure(self, request) -> None:
        """Count one failed credential check against this address."""
        if self.rate is not None:
            self.allow_request(request, None)
