"""Settings for the benchmarks: the project's own, plus a URLconf that adds the hand-written baseline view."""

from tutum_api.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
