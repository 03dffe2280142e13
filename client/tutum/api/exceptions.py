"""The client's errors: python-tutum's four, with what the server said attached, and the waits' own two."""

from __future__ import annotations


class TutumApiError(Exception):
    """An error status code was returned when querying the HTTP API (or no answer came at all).

    ``status_code`` is None when no answer came; ``error`` and ``errors`` are the server's JSON ``error`` string and
    per-field ``errors``; ``retry_after`` is the seconds a 429/503 asked to wait.
    """

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        error: str | None = None,
        errors: dict | None = None,
        method: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.errors = errors or {}
        self.method = method
        self.url = url
        self.retry_after = retry_after


class TutumAuthError(TutumApiError):
    """An 401 Unauthorized status code was returned when querying the API (or the stream said UNAUTHORIZED)."""


class NonUniqueIdentifier(TutumApiError):
    """A short uuid or name matched more than one object."""


class ObjectNotFound(TutumApiError):
    """No object has that uuid, short uuid or name."""


class TutumWaitError(TutumApiError):
    """A wait cannot succeed: the object reached a final state other than the one waited for."""


class TutumTimeoutError(TutumWaitError, TimeoutError):
    """A wait ran out of time."""
