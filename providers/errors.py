"""The errors a driver may raise (no Django, no imports: every other providers module uses them).

Two kinds decide what the engine does (retry later, or give up on this attempt), and each error carries a
`reason_code` saying why, from the table in `nodeclusters.choices.ReasonCode` (drivers map their provider's
answers onto the subclasses below; anything else is `provider_error`).
"""


class ProviderError(Exception):
    """Base class of every error a driver raises."""

    reason_code = "provider_error"

    def __init__(self, *args, reason_code: str | None = None) -> None:
        super().__init__(*args)
        if reason_code is not None:
            self.reason_code = reason_code


class TransientProviderError(ProviderError):
    """Worth retrying later: throttling, 5xx answers, timeouts, a connection that dropped."""


class PermanentProviderError(ProviderError):
    """Retrying will not help: bad credentials, unknown image or size, quota exceeded, invalid options."""


class RateLimited(TransientProviderError):
    """The provider throttled us (HTTP 429, AWS RequestLimitExceeded/Throttling)."""

    reason_code = "rate_limited"


class CapacityUnavailable(PermanentProviderError):
    """The provider has no capacity for this size here right now (AWS InsufficientInstanceCapacity, DigitalOcean's
    "region is unavailable for this size"): this attempt fails; another zone or a later retry may succeed."""

    reason_code = "capacity_unavailable"


class QuotaExceeded(PermanentProviderError):
    """The account's limit at the provider is reached (DigitalOcean's droplet limit, AWS's vCPU quota)."""

    reason_code = "quota_exceeded"


class AuthFailed(PermanentProviderError):
    """The credentials were refused or lack a permission."""

    reason_code = "auth_failed"


class InvalidProviderRequest(PermanentProviderError):
    """The provider refused the request as invalid (unknown size, image or region, bad option)."""

    reason_code = "invalid_request"


#: Every code a driver's error can carry; nodeclusters.choices.ReasonCode includes them all (a test checks).
PROVIDER_REASON_CODES = frozenset(
    klass.reason_code
    for klass in (ProviderError, RateLimited, CapacityUnavailable, QuotaExceeded, AuthFailed, InvalidProviderRequest)
)
