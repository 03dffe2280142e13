"""Top-level URL wiring: the API under /api/v1/, the admin dashboard under /admin/, health probes."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from nodeclusters.api.errors import api_not_found
from nodeclusters.stream.views import events_on_stream_host
from tutum_api import health, metrics

urlpatterns = [
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="docs/redoc.html"), name="redoc"),
    re_path(r"^api/v1/events/?$", events_on_stream_host, name="events"),
    path("api/v1/", include("nodeclusters.api.urls")),
    re_path(r"^api/", api_not_found),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

handler400 = "nodeclusters.api.errors.bad_request"
handler500 = "nodeclusters.api.errors.server_error"
