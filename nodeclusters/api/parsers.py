"""Requests as Tutum's SDKs send them: repeated slashes in paths; JSON with or without a Content-Type, empty bodies,
size limits."""

import json
import re

from django.conf import settings
from django.http import JsonResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_REPEATED_SLASHES = re.compile(r"//+")


class MergeSlashesMiddleware:
    """Treat repeated slashes in a path as one, as Tutum's front end did (nginx's `merge_slashes`).

    go-tutum requests `/api/v1/nodecluster/<uuid>//` when given a resource URI. The path is rewritten in place,
    not redirected: the request carries on, and everything after this middleware (routing, the action's recorded
    path, page links) sees the merged path.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "//" in request.path_info:
            request.path_info = _REPEATED_SLASHES.sub("/", request.path_info)
            request.path = _REPEATED_SLASHES.sub("/", request.path)
        return self.get_response(request)


class ApiRequestMiddleware:
    """Treat a body sent without Content-Type as JSON (some SDKs do that), and refuse oversized bodies early."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/") and request.method in _BODY_METHODS:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"error": "Content-Length must be a number of bytes."}, status=400)
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if length > limit:
                return JsonResponse({"error": f"Request body too large: the limit is {limit} bytes."}, status=413)
            if length and not request.META.get("CONTENT_TYPE"):
                request.META["CONTENT_TYPE"] = "application/json"
        return self.get_response(request)


class TutumJSONParser(JSONParser):
    """JSON bodies; an empty or whitespace body is `{}`, deep or malformed JSON is a clear 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("Malformed JSON: the body is not UTF-8.") from None
        except RecursionError:
            raise ParseError("Malformed JSON: nested too deeply.") from None
        except ValueError as error:
            raise ParseError(f"Malformed JSON: {error}") from None
