"""The list views' filter backend: the filtersets of `nodeclusters.filtersets`, skipped for a bare page."""

from django_filters.rest_framework import DjangoFilterBackend

from .pagination import TastypiePagination


class FilterBackend(DjangoFilterBackend):
    """django-filter, skipped for a request with no query parameter but the page's: it would build a form for
    nothing, on every bare list page."""

    def filter_queryset(self, request, queryset, view):
        if set(request.query_params) <= TastypiePagination.query_params:
            return queryset
        return super().filter_queryset(request, queryset, view)
