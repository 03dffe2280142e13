"""Django app config for node clusters."""

from django.apps import AppConfig


class NodeClustersConfig(AppConfig):
    name = "nodeclusters"
    verbose_name = "Node clusters"
