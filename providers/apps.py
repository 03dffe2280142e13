"""Django app config for the providers package (it owns the simulated cloud's table)."""

from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Cloud providers"
