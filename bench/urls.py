"""The project's URLs plus the benchmark's baseline list page at /bench/baseline/nodecluster/."""

from django.urls import include, path

from bench.baseline import baseline_node_cluster_list

urlpatterns = [
    path("bench/baseline/nodecluster/", baseline_node_cluster_list, name="bench-baseline-nodecluster"),
    path("", include("tutum_api.urls")),
]

handler400 = "nodeclusters.api.errors.bad_request"
handler500 = "nodeclusters.api.errors.server_error"
