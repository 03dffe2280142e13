"""The registry: catalog provider names to drivers built from settings, cached until settings change."""

from __future__ import annotations

import pytest
from django.test import override_settings

from providers.aws import AWSDriver
from providers.base import PermanentProviderError
from providers.digitalocean import DigitalOceanDriver
from providers.registry import get_driver
from providers.simulated import SimulatedDriver

REAL_PROVIDERS = {
    "SIMULATE_PROVIDERS": False,
    "PROVIDER_DRIVERS": {
        "aws": "providers.aws.AWSDriver",
        "digitalocean": "providers.digitalocean.DigitalOceanDriver",
        "local": "providers.simulated.SimulatedDriver",
    },
    "PROVIDER_OWNER_TAG": "tutum-test-server",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "AWS_AMIS": '{"eu-west-1": "ami-0eu", "us-east-1": "ami-0us"}',
    "AWS_DEFAULT_AMI": "ami-0default",
    "DIGITALOCEAN_TOKEN": "do-token",
    "DIGITALOCEAN_IMAGE": "docker-20-04",
    "SIMULATED_BOOT_SECONDS": 5.0,
    "SIMULATED_FAILURE_RATE": 0.25,
    "SIMULATED_SEED": "seed-1",
}


class SubclassedAWSDriver(AWSDriver):
    """A deployment's own AWS driver; it must still be configured from the AWS settings."""


@override_settings(**REAL_PROVIDERS)
def test_names_map_to_the_configured_drivers_built_from_settings():
    aws = get_driver("aws")
    digitalocean = get_driver("digitalocean")
    local = get_driver("local")

    assert type(aws) is AWSDriver
    assert (aws.name, aws.owner_tag, aws.endpoint_url) == ("aws", "tutum-test-server", "http://127.0.0.1:5000")
    assert aws.amis == {"eu-west-1": "ami-0eu", "us-east-1": "ami-0us"}
    assert aws.default_ami == "ami-0default"
    assert type(digitalocean) is DigitalOceanDriver
    assert (digitalocean.name, digitalocean.token, digitalocean.image) == ("digitalocean", "do-token", "docker-20-04")
    assert digitalocean.owner_tag == "tutum-test-server"
    assert type(local) is SimulatedDriver
    assert (local.name, local.boot_seconds, local.failure_rate, local.seed) == ("local", 5.0, 0.25, "seed-1")


@override_settings(**REAL_PROVIDERS)
def test_unknown_provider_without_simulation_is_permanent_and_says_why():
    with pytest.raises(PermanentProviderError, match=r"No driver for provider 'softlayer'.*aws, digitalocean, local"):
        get_driver("softlayer")


@override_settings(SIMULATE_PROVIDERS=True, PROVIDER_OWNER_TAG="tutum-test-server", SIMULATED_SEED="")
def test_simulation_serves_every_name_with_its_own_simulated_cloud():
    drivers = {name: get_driver(name) for name in ("aws", "digitalocean", "local", "softlayer")}

    assert {type(driver) for driver in drivers.values()} == {SimulatedDriver}
    assert {name: driver.name for name, driver in drivers.items()} == {name: name for name in drivers}
    assert all(driver.owner_tag == "tutum-test-server" for driver in drivers.values())
    assert drivers["aws"].seed is None


@override_settings(**REAL_PROVIDERS)
def test_drivers_are_cached_per_name():
    assert get_driver("aws") is get_driver("aws")
    assert get_driver("aws") is not get_driver("digitalocean")


def test_changing_settings_gives_fresh_drivers():
    with override_settings(**REAL_PROVIDERS):
        before = get_driver("digitalocean")
    with override_settings(**{**REAL_PROVIDERS, "DIGITALOCEAN_TOKEN": "rotated-token"}):
        after = get_driver("digitalocean")

    assert after is not before
    assert after.token == "rotated-token"


def test_the_settings_fixture_gives_fresh_drivers_too(settings):
    for name, value in REAL_PROVIDERS.items():
        setattr(settings, name, value)
    assert type(get_driver("aws")) is AWSDriver

    settings.SIMULATE_PROVIDERS = True

    assert type(get_driver("aws")) is SimulatedDriver


@override_settings(**{**REAL_PROVIDERS, "PROVIDER_DRIVERS": {"aws": f"{__name__}.SubclassedAWSDriver"}})
def test_a_driver_subclass_is_configured_like_its_parent():
    driver = get_driver("aws")

    assert type(driver) is SubclassedAWSDriver
    assert driver.default_ami == "ami-0default"


@pytest.mark.parametrize("amis", ["not json", '["ami-1"]', '{"us-east-1": 5}'])
def test_malformed_aws_amis_is_permanent(amis):
    with (
        override_settings(**{**REAL_PROVIDERS, "AWS_AMIS": amis}),
        pytest.raises(PermanentProviderError, match="AWS_AMIS"),
    ):
        get_driver("aws")


@pytest.mark.parametrize(
    ("path", "message"),
    [("providers.nowhere.Driver", "cannot be imported"), ("providers.base.NodeSpec", "not a NodeDriver subclass")],
)
def test_a_bad_driver_path_is_permanent(path, message):
    with (
        override_settings(**{**REAL_PROVIDERS, "PROVIDER_DRIVERS": {"aws": path}}),
        pytest.raises(PermanentProviderError, match=message),
    ):
        get_driver("aws")


@override_settings(**{**REAL_PROVIDERS, "AWS_AMIS": ""})
def test_empty_aws_amis_means_default_ami_everywhere():
    assert get_driver("aws").amis == {}
