"""How botocore's errors become provider errors with a reason code (no Django)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from providers.errors import (
    AuthFailed,
    CapacityUnavailable,
    InvalidProviderRequest,
    PermanentProviderError,
    QuotaExceeded,
    RateLimited,
    TransientProviderError,
)

# AWS error codes with a reason of their own. Capacity is permanent for this attempt (another zone or a later
# deploy may find some), quota needs the account owner to act, throttling passes by itself.
CAPACITY_ERROR_CODES = frozenset({"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity"})
QUOTA_ERROR_CODES = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded"})
AUTH_ERROR_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "OptInRequired",
    }
)
RATE_LIMIT_ERROR_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)
INVALID_REQUEST_ERROR_CODES = frozenset({"InvalidInstanceType", "InvalidAMIID", "Unsupported"})
# Codes that say "not now" rather than "never" without being throttling: AWS-side faults.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError, e.g. "RequestLimitExceeded"."""
    return error.response.get("Error", {}).get("Code") or "Unknown"


def error_class_for(code: str, status: int) -> type[TransientProviderError | PermanentProviderError]:
    """The provider error class an AWS error code (and HTTP status) maps to."""
    family = code.split(".")[0]
    if code in RATE_LIMIT_ERROR_CODES:
        return RateLimited
    if code in CAPACITY_ERROR_CODES:
        return CapacityUnavailable
    if code in QUOTA_ERROR_CODES:
        return QuotaExceeded
    if code in AUTH_ERROR_CODES:
        return AuthFailed
    if (
        code in INVALID_REQUEST_ERROR_CODES
        or family in INVALID_REQUEST_ERROR_CODES
        or code.startswith("InvalidParameter")
    ):
        return InvalidProviderRequest
    if code in TRANSIENT_ERROR_CODES or status >= 500:
        return TransientProviderError
    return PermanentProviderError


@contextmanager
def translated_errors(operation: str) -> Iterator[None]:
    """Re-raise botocore errors from the block as provider errors, chained so callers can inspect the original."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        message = error.response.get("Error", {}).get("Message") or str(error)
        raise error_class_for(code, status)(
            f"aws: {operation} failed with {code} (HTTP {status}): {message}"
        ) from error
    except SSLError as error:
        # A certificate problem is configuration, not a blip.
        raise PermanentProviderError(f"aws: {operation} failed: {error}") from error
    except (ConnectionError, ConnectionClosedError, ReadTimeoutError) as error:
        raise TransientProviderError(f"aws: {operation} failed: {type(error).__name__}: {error}") from error
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise AuthFailed(f"aws: {operation} failed: {type(error).__name__}: {error}") from error
    except ParamValidationError as error:
        raise InvalidProviderRequest(f"aws: {operation} failed: {type(error).__name__}: {error}") from error
    except BotoCoreError as error:
        # No region, an unknown endpoint, a bad configuration: nothing a retry would fix.
        raise PermanentProviderError(f"aws: {operation} failed: {type(error).__name__}: {error}") from error
