"""Errors the services raise; each carries the HTTP status, message and code the API answers with."""

from rest_framework import status
from rest_framework.exceptions import APIException


class ServiceError(APIException):
    """Base of the domain's errors."""


class InvalidRequest(ServiceError):
    """The request is well-formed JSON but asks for something impossible (e.g. a type not in that region)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Invalid request."
    default_code = "invalid"


class ObjectNotFound(ServiceError):
    """No such object, or it belongs to someone else (the two are indistinguishable on purpose)."""

    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Not found."
    default_code = "not_found"


class StateConflict(ServiceError):
    """The object's current state does not allow the operation."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The operation is not allowed in the object's current state."
    default_code = "state_conflict"

    def __init__(self, *, kind: str, operation: str, state: str, allowed: list[str]):
        allowed_text = ", ".join(f"'{name}'" for name in allowed) if allowed else "none"
        super().__init__(
            f"Cannot {operation} {kind} in state '{state}'. Operations allowed in this state: {allowed_text}."
        )


class NotSupported(ServiceError):
    """The operation exists but the object's provider cannot do it."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The provider does not support this operation."
    default_code = "not_supported"
