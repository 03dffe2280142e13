"""The project's URLs plus the benchmark's baseline list and detail under /bench/baseline/nodecluster/."""

from django.urls import include, path

from bench.baseline import baseline_node_cluster_detail, baseline_node_cluster_list

urlpatterns = [
    path("bench/baseline/nodecluster/", baseline_node_cluster_list, name="bench-baseline-nodecluster"),
    path(
        "bench/baseline/nodecluster/<uuid:uuid>/",
        baseline_node_cluster_detail,
        name="bench-baseline-nodecluster-detail",
    ),
    path("", include("tutum_api.urls")),
]

handler400 = "nodeclusters.api.errors.bad_request"
handler500 = "nodeclusters.api.errors.server_error"
