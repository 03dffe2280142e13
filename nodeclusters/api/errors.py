"""Tutum's error bodies: every 4xx/5xx answer is JSON with an `error` string a person can act on."""

import logging

from django.db import DatabaseError, OperationalError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def _flatten(detail, prefix: str = "") -> list[str]:
    """`{"name": ["This field is required."]}` -> `["name: This field is required."]`, recursively."""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            label = f"{prefix}.{key}" if prefix else str(key)
            lines.extend(_flatten(value, "" if key == "non_field_errors" else label))
        return lines
    if isinstance(detail, list):
        lines = []
        for index, value in enumerate(detail):
            nested = isinstance(value, dict | list)
            lines.extend(_flatten(value, f"{prefix}[{index}]" if nested and prefix else prefix))
        return lines
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def error_body(exc: exceptions.APIException) -> dict:
    """The JSON body for a DRF exception; validation errors also carry per-field detail under `errors`."""
    if isinstance(exc, exceptions.ValidationError):
        messages = _flatten(exc.detail)
        body = {"error": "Invalid request: " + "; ".join(messages)}
        if isinstance(exc.detail, dict):
            body["errors"] = exc.detail
        return body
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return {"error": f"{exc.detail} Send JSON with 'Content-Type: application/json' (or no Content-Type at all)."}
    body = {"error": " ".join(_flatten(exc.detail))}
    reasons = getattr(exc, "reasons", None)  # a preflight refusal's structured reasons (services.preflight)
    if reasons:
        body["reasons"] = reasons
    return body


def tutum_exception_handler(exc, context):
    """DRF's handler with Tutum's body; unexpected errors become a JSON 500 (or 503 when the database is down)."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(exc if isinstance(exc, exceptions.APIException) else exceptions.NotFound())
        return response
    if isinstance(exc, OperationalError):
        logger.exception("Database unavailable while serving a request")
        return Response(
            {"error": "The database is unavailable; nothing was changed. Try again shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, DatabaseError):
        logger.exception("Database error while serving a request")
    else:
        logger.exception("Unhandled error while serving a request")
    return Response(
        {"error": "Internal server error; the request was not carried out. Try again later."},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


@csrf_exempt  # API clients send no CSRF cookie: a write to an unknown path must still get the JSON 404
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer a JSON 404, never an HTML page."""
    return JsonResponse({"error": f"No API resource at {request.path!r}. Resources live under /api/v1/."}, status=404)


def server_error(request, *args, **kwargs):
    """Project-wide 500 handler (errors outside DRF views)."""
    return JsonResponse({"error": "Internal server error. Try again later."}, status=500)


def bad_request(request, exception=None, *args, **kwargs):
    """Project-wide 400 handler (e.g. a suspicious Host header)."""
    return JsonResponse({"error": "Bad request."}, status=400)
