"""Top-level URL wiring: the API under /api/v1/, the admin dashboard under /admin/."""

from django.contrib import admin
from django.urls import include, path, re_path

from nodeclusters.api.errors import api_not_found

urlpatterns = [
    path("api/v1/", include("nodeclusters.api.urls")),
    re_path(r"^api/", api_not_found),
    path("admin/", admin.site.urls),
]

handler400 = "nodeclusters.api.errors.bad_request"
handler500 = "nodeclusters.api.errors.server_error"
