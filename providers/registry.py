"""Which driver serves a catalog provider name and account, built from settings and kept while it is in use."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from providers.base import NodeDriver, PermanentProviderError, credentials_fingerprint

SIMULATED_DRIVER_PATH = "providers.simulated.SimulatedDriver"

#: How many drivers a process keeps: the server's own one per provider plus the accounts used most recently.
MAX_CACHED_DRIVERS = 256

# (provider name, credentials fingerprint) -> driver, least recently used first. The fingerprint ("" for the
# server's own credentials) keeps each account's driver apart: no account's driver is ever handed out for another.
_drivers: OrderedDict[tuple[str, str], NodeDriver] = OrderedDict()
_lock = threading.Lock()


def get_driver(provider_name: str, credentials: dict | None = None) -> NodeDriver:
    """The driver for a catalog provider name ("aws", "digitalocean", "local", ...) acting as one account.

    `credentials` are a user's linked account ({"token": ...} for DigitalOcean and the simulated clouds, AWS access
    keys or a role to assume); None means the server's own credentials from settings. With `SIMULATE_PROVIDERS`
    on, every name is served by its own simulated cloud. Drivers are kept per account (the AWS driver's
    per-region clients and the DigitalOcean driver's sessions are worth keeping), the least recently used dropped
    past `MAX_CACHED_DRIVERS`.
    """
    key = (provider_name, credentials_fingerprint(credentials))
    with _lock:
        driver = _drivers.get(key)
        if driver is not None:
            _drivers.move_to_end(key)
            return driver
        driver = _drivers[key] = _build_driver(provider_name, credentials)
        while len(_drivers) > MAX_CACHED_DRIVERS:
            _drivers.popitem(last=False)
    return driver


def clear_driver_cache() -> None:
    """Forget every built driver, so the next `get_driver` call reads settings again."""
    with _lock:
        _drivers.clear()


@receiver(setting_changed)
def _clear_on_setting_changed(**kwargs) -> None:
    """Tests change settings with `override_settings`; a driver built from the old values must not outlive them."""
    clear_driver_cache()


def _build_driver(provider_name: str, credentials: dict | None = None) -> NodeDriver:
    """A new driver for the provider name and account, configured from settings."""
    if settings.SIMULATE_PROVIDERS:
        path = SIMULATED_DRIVER_PATH
    else:
        path = settings.PROVIDER_DRIVERS.get(provider_name)
        if not path:
            known = ", ".join(sorted(settings.PROVIDER_DRIVERS)) or "none"
            raise PermanentProviderError(
                f"No driver for provider {provider_name!r}: PROVIDER_DRIVERS knows {known} "
                "(or set SIMULATE_PROVIDERS to serve every provider from the simulated cloud)"
            )
    try:
        driver_class = import_string(path)
    except ImportError as error:
        raise PermanentProviderError(
            f"Driver {path!r} for provider {provider_name!r} cannot be imported: {error}"
        ) from error
    if not (isinstance(driver_class, type) and issubclass(driver_class, NodeDriver)):
        raise PermanentProviderError(f"{path!r} (provider {provider_name!r}) is not a NodeDriver subclass")
    options = _driver_options(driver_class, provider_name)
    if credentials is not None:
        options["credentials"] = credentials
    return driver_class(**options)


def _driver_options(driver_class: type[NodeDriver], provider_name: str) -> dict:
    """Constructor arguments for the driver class: the shared ones plus those its provider's settings supply.

    Looked up along the class's MRO by dotted path, so a subclass configured in PROVIDER_DRIVERS gets its parent's
    settings, and drivers for clouds a deployment does not use are never imported.
    """
    options = {"owner_tag": settings.PROVIDER_OWNER_TAG, "provider_name": provider_name}
    for klass in driver_class.__mro__:
        settings_options = _SETTINGS_OPTIONS.get(f"{klass.__module__}.{klass.__qualname__}")
        if settings_options is not None:
            options.update(settings_options())
            break
    return options


def _simulated_options() -> dict:
    """The simulated cloud's boot time, failure rate, seed and node limit per account."""
    return {
        "boot_seconds": settings.SIMULATED_BOOT_SECONDS,
        "failure_rate": settings.SIMULATED_FAILURE_RATE,
        "seed": settings.SIMULATED_SEED or None,
        "node_limit": settings.SIMULATED_NODE_LIMIT,
    }


def _aws_options() -> dict:
    """The endpoint, the AMI per region and the catalog's regions; the server's credentials stay with boto3's chain."""
    amis = settings.AWS_AMIS
    if isinstance(amis, str):
        try:
            amis = json.loads(amis or "{}")
        except json.JSONDecodeError as error:
            raise PermanentProviderError(
                f'AWS_AMIS must be a JSON object like {{"us-east-1": "ami-..."}}: {error}'
            ) from error
    if not isinstance(amis, dict) or not all(isinstance(value, str) for value in amis.values()):
        raise PermanentProviderError(
            'AWS_AMIS must be a JSON object mapping region to AMI id, like {"us-east-1": "ami-..."}'
        )
    return {
        "endpoint_url": settings.AWS_ENDPOINT_URL or None,
        "amis": amis,
        "default_ami": settings.AWS_DEFAULT_AMI,
        "catalog_regions": _aws_catalog_regions,
        "catalog_instance_types": tuple(_setting_list("AWS_CATALOG_INSTANCE_TYPES")),
    }


def _aws_catalog_regions() -> list[str]:
    """The regions the AWS catalog sync reads: AWS_CATALOG_REGIONS, else those the catalog already has.

    Asked at sync time rather than when the driver is built, so a region an operator adds is synced next time.
    """
    regions = _setting_list("AWS_CATALOG_REGIONS")
    if regions:
        return regions
    from nodeclusters.models import Region

    return sorted(Region.objects.filter(provider__name="aws").values_list("name", flat=True))


def _setting_list(name: str) -> list[str]:
    """A list setting's non-empty items; a comma-separated string (as from the environment) is split."""
    value = getattr(settings, name, None) or []
    if isinstance(value, str):
        value = value.split(",")
    return [item.strip() for item in value if item and item.strip()]


def _digitalocean_options() -> dict:
    """The API token, the droplet image and the API's base URL."""
    return {
        "token": settings.DIGITALOCEAN_TOKEN,
        "image": settings.DIGITALOCEAN_IMAGE,
        "endpoint": settings.DIGITALOCEAN_API_URL or None,
    }


_SETTINGS_OPTIONS: dict[str, Callable[[], dict]] = {
    SIMULATED_DRIVER_PATH: _simulated_options,
    "providers.aws.AWSDriver": _aws_options,
    "providers.digitalocean.DigitalOceanDriver": _digitalocean_options,
}
