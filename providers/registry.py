"""Which driver serves a catalog provider name, built from settings and kept for the life of the process."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from providers.base import NodeDriver, PermanentProviderError

SIMULATED_DRIVER_PATH = "providers.simulated.SimulatedDriver"

_drivers: dict[str, NodeDriver] = {}
_lock = threading.Lock()


def get_driver(provider_name: str) -> NodeDriver:
    """The driver for a catalog provider name ("aws", "digitalocean", "local", ...).

    With `SIMULATE_PROVIDERS` on, every name is served by its own simulated cloud. Drivers are built once per
    process: the AWS driver's per-region clients and the DigitalOcean driver's sessions are worth keeping.
    """
    driver = _drivers.get(provider_name)
    if driver is None:
        with _lock:
            driver = _drivers.get(provider_name)
            if driver is None:
                driver = _drivers[provider_name] = _build_driver(provider_name)
    return driver


def clear_driver_cache() -> None:
    """Forget every built driver, so the next `get_driver` call reads settings again."""
    with _lock:
        _drivers.clear()


@receiver(setting_changed)
def _clear_on_setting_changed(**kwargs) -> None:
    """Tests change settings with `override_settings`; a driver built from the old values must not outlive them."""
    clear_driver_cache()


def _build_driver(provider_name: str) -> NodeDriver:
    """A new driver for the provider name, configured from settings."""
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
    return driver_class(**_driver_options(driver_class, provider_name))


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
    """The simulated cloud's boot time, failure rate and seed."""
    return {
        "boot_seconds": settings.SIMULATED_BOOT_SECONDS,
        "failure_rate": settings.SIMULATED_FAILURE_RATE,
        "seed": settings.SIMULATED_SEED or None,
    }


def _aws_options() -> dict:
    """The EC2 endpoint and the AMI per region; credentials stay with boto3's own chain."""
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
    return {"endpoint_url": settings.AWS_ENDPOINT_URL or None, "amis": amis, "default_ami": settings.AWS_DEFAULT_AMI}


def _digitalocean_options() -> dict:
    """The API token and the droplet image."""
    return {"token": settings.DIGITALOCEAN_TOKEN, "image": settings.DIGITALOCEAN_IMAGE}


_SETTINGS_OPTIONS: dict[str, Callable[[], dict]] = {
    SIMULATED_DRIVER_PATH: _simulated_options,
    "providers.aws.AWSDriver": _aws_options,
    "providers.digitalocean.DigitalOceanDriver": _digitalocean_options,
}
