"""Tutum's auth header: `ApiKey <username>:<apikey>` or `Basic base64(<username>:<apikey>)`, throttled per key."""

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


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates a user by one of their API keys; `request.auth` is the `ApiKey` row."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        try:
            scheme, _, credentials = header.decode("latin-1").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(f"Malformed Authorization header. {_HOW_TO}") from None
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "basic":
            try:
                credentials = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise exceptions.AuthenticationFailed(f"Malformed Basic credentials. {_HOW_TO}") from None
        elif scheme != "apikey":
            raise exceptions.AuthenticationFailed(f"Unsupported authorization scheme {scheme!r}. {_HOW_TO}")
        username, separator, key = credentials.partition(":")
        if not separator or not username or not key:
            raise exceptions.AuthenticationFailed(f"Credentials must be <username>:<apikey>. {_HOW_TO}")
        api_key = api_key_authenticate(username=username, raw_key=key)
        if api_key is None:
            # DRF throttles run after authentication, so failed guesses are counted here, per client address.
            throttle = FailedAuthenticationThrottle()
            if not throttle.allow_request(request, None):
                raise exceptions.Throttled(wait=throttle.wait())
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


class FailedAuthenticationThrottle(ApiKeyRateThrottle):
    """Failed credential checks per client address, at the same rate; counted while authenticating."""

    scope = "failed_auth"

    def get_cache_key(self, request, view):
        # Never touch request.auth here: it is being computed, and reading it would authenticate again.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
