"""Tastypie-style list pages: `{"meta": {limit, next, offset, previous, total_count}, "objects": [...]}`."""

from django.conf import settings
from django.db.models import Count, Window
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

#: The largest offset: well inside the 64-bit integers SQLite and PostgreSQL take for OFFSET (a larger one was a 500),
#: and past any list's end.
MAX_OFFSET = 2**31 - 1


def _non_negative_int(request, name: str, default: int, maximum: int | None = None) -> int:
    """The parameter's value: ASCII digits only, as the document's `integer` reads (Python's int() would also
    take a sign, spaces, `_` and other scripts' digits); empty or absent is the default."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError({name: [f"{name} must be a non-negative integer, got {raw!r}"]})
    value = int(raw)
    if maximum is not None and value > maximum:
        raise ValidationError({name: [f"{name} must be at most {maximum}, got {raw!r}"]})
    return value


TOTAL = "page_total_count"


class TastypiePagination(LimitOffsetPagination):
    """Limit/offset pages whose `next`/`previous` are paths under /api/v1/ that keep the caller's filters."""

    default_limit = 25
    #: Every query parameter a page reads; the rest are filters.
    query_params = frozenset({LimitOffsetPagination.limit_query_param, LimitOffsetPagination.offset_query_param})

    @property
    def max_limit(self) -> int:
        return settings.API_MAX_PAGE_SIZE

    def get_limit(self, request) -> int:
        limit = _non_negative_int(request, self.limit_query_param, self.default_limit)
        if limit == 0:
            raise ValidationError({"limit": [f"limit must be between 1 and {self.max_limit}"]})
        return min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        return _non_negative_int(request, self.offset_query_param, 0, MAX_OFFSET)

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        if queryset.query.distinct:
            # A window count runs before DISTINCT and would count duplicates.
            self.count = self.get_count(queryset)
            return list(queryset[self.offset : self.offset + self.limit]) if self.offset < self.count else []
        # The total rides on the page's rows (count(*) OVER ()), so a page is one query, not a count and a page.
        rows = list(queryset.annotate(**{TOTAL: Window(Count("*"))})[self.offset : self.offset + self.limit])
        if rows:
            self.count = rows[0][TOTAL] if isinstance(rows[0], dict) else getattr(rows[0], TOTAL)
        else:  # past the end, no row carries the total
            self.count = self.get_count(queryset) if self.offset else 0
        return rows

    def _page_path(self, offset: int) -> str:
        path = self.request.get_full_path()
        path = replace_query_param(path, self.limit_query_param, self.limit)
        return replace_query_param(path, self.offset_query_param, offset)

    def get_next_link(self) -> str | None:
        if self.offset + self.limit >= self.count:
            return None
        return self._page_path(self.offset + self.limit)

    def get_previous_link(self) -> str | None:
        if self.offset <= 0:
            return None
        return self._page_path(max(self.offset - self.limit, 0))

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Objects per page (default {self.default_limit}); a larger value than "
                f"{self.max_limit} (API_MAX_PAGE_SIZE) is read as {self.max_limit}, which `meta.limit` shows.",
                "schema": {"type": "integer", "minimum": 1, "example": self.default_limit},
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "How many objects to skip (default 0); past the end, the page is empty.",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            },
        ]

    def get_paginated_response_schema(self, schema: dict) -> dict:
        page_link = {"type": "string", "nullable": True, "example": "/api/v1/nodecluster/?limit=25&offset=25"}
        return {
            "type": "object",
            "required": ["meta", "objects"],
            "properties": {
                "meta": {
                    "type": "object",
                    "required": ["limit", "next", "offset", "previous", "total_count"],
                    "properties": {
                        "limit": {"type": "integer", "minimum": 1, "example": 25},
                        "next": page_link,
                        "offset": {"type": "integer", "minimum": 0, "example": 0},
                        "previous": page_link,
                        "total_count": {"type": "integer", "minimum": 0, "example": 1},
                    },
                },
                "objects": schema,
            },
        }

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "meta": {
                    "limit": self.limit,
                    "next": self.get_next_link(),
                    "offset": self.offset,
                    "previous": self.get_previous_link(),
                    "total_count": self.count,
                },
                "objects": data,
            }
        )
