"""Per-account drivers: each set of credentials gets its own driver, acting as its own account and no other."""

from __future__ import annotations

import inspect

import boto3
import pytest
import responses
from django.test import override_settings

import providers.errors
from nodeclusters.choices import ReasonCode
from providers import registry
from providers.aws import AWSDriver
from providers.base import AuthFailed, InvalidProviderRequest, ProviderError
from providers.digitalocean import DigitalOceanDriver
from providers.registry import get_driver
from providers.simulated import SimulatedDriver
from tests.providers.conftest import AWS_REGION, DIGITALOCEAN_REGION, OWNER, SIMULATED_REGION, make_spec
from tests.providers.test_registry import REAL_PROVIDERS

ROLE_ARN = "arn:aws:iam::111122223333:role/tutum-nodes"


# --- the registry -----------------------------------------------------------------------------------------------


@override_settings(**REAL_PROVIDERS)
def test_each_credentials_get_their_own_cached_driver():
    alice = get_driver("digitalocean", credentials={"token": "alice-token"})
    bob = get_driver("digitalocean", credentials={"token": "bob-token"})
    server = get_driver("digitalocean")

    assert (alice.token, bob.token, server.token) == ("alice-token", "bob-token", "do-token")
    assert get_driver("digitalocean", credentials={"token": "alice-token"}) is alice
    assert get_driver("digitalocean", credentials=None) is server
    assert len({id(alice), id(bob), id(server)}) == 3
    # Same account, same driver, whatever order the keys came in.
    keys = {"access_key_id": "AKIAALICE", "secret_access_key": "secret"}
    assert get_driver("aws", credentials=keys) is get_driver("aws", credentials=dict(reversed(keys.items())))
    assert get_driver("aws", credentials=keys) is not get_driver("aws", credentials={**keys, "secret_access_key": "x"})


@override_settings(**REAL_PROVIDERS)
def test_an_account_driver_keeps_the_server_settings_but_not_the_server_credentials():
    driver = get_driver("aws", credentials={"role_arn": ROLE_ARN, "external_id": "tutum-alice"})

    assert driver._credentials == {"role_arn": ROLE_ARN, "external_id": "tutum-alice"}
    assert (driver.owner_tag, driver.endpoint_url, driver.default_ami) == (
        "tutum-test-server",
        "http://127.0.0.1:5000",
        "ami-0default",
    )
    assert get_driver("aws")._credentials is None


@override_settings(**REAL_PROVIDERS)
def test_the_driver_cache_is_bounded_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(registry, "MAX_CACHED_DRIVERS", 3)
    first = get_driver("digitalocean", credentials={"token": "one"})
    second = get_driver("digitalocean", credentials={"token": "two"})
    get_driver("digitalocean", credentials={"token": "three"})
    assert get_driver("digitalocean", credentials={"token": "one"}) is first  # now the most recently used

    get_driver("digitalocean", credentials={"token": "four"})

    assert get_driver("digitalocean", credentials={"token": "one"}) is first
    assert get_driver("digitalocean", credentials={"token": "two"}) is not second


def test_changed_settings_forget_account_drivers_too():
    with override_settings(**REAL_PROVIDERS):
        before = get_driver("digitalocean", credentials={"token": "alice-token"})
    with override_settings(**{**REAL_PROVIDERS, "DIGITALOCEAN_IMAGE": "ubuntu-22-04-x64"}):
        after = get_driver("digitalocean", credentials={"token": "alice-token"})

    assert after is not before
    assert after.image == "ubuntu-22-04-x64"


@override_settings(**{**REAL_PROVIDERS, "DIGITALOCEAN_API_URL": "https://do.example.test"})
def test_digitalocean_api_url_points_the_driver_elsewhere():
    driver = get_driver("digitalocean", credentials={"token": "alice-token"})
    account = {"uuid": "u-1", "email": "alice@example.com", "droplet_limit": 10}

    with responses.RequestsMock() as mock:
        mock.get("https://do.example.test/v2/account", json={"account": account})
        info = driver.verify_account()
        authorization = mock.calls[0].request.headers["Authorization"]

    assert info.account_id == "u-1"
    assert authorization == "Bearer alice-token"


@override_settings(SIMULATE_PROVIDERS=True, SIMULATED_NODE_LIMIT=7)
def test_simulated_drivers_take_the_account_and_the_node_limit():
    driver = get_driver("digitalocean", credentials={"token": "alice-token"})

    assert type(driver) is SimulatedDriver
    assert driver.node_limit == 7
    assert driver.account and driver.account != get_driver("digitalocean").account == ""


def test_aws_catalog_regions_come_from_the_setting_else_from_the_catalog(db):
    with override_settings(**{**REAL_PROVIDERS, "AWS_CATALOG_REGIONS": ["eu-west-1", "us-east-1"]}):
        assert get_driver("aws").catalog_regions() == ["eu-west-1", "us-east-1"]
    with override_settings(**{**REAL_PROVIDERS, "AWS_CATALOG_REGIONS": []}):
        # The seeded catalog's AWS regions.
        assert {"us-east-1", "eu-west-1", "sa-east-1"} <= set(get_driver("aws").catalog_regions())


@pytest.mark.parametrize(
    ("driver_class", "credentials"),
    [
        (DigitalOceanDriver, {"api_key": "x"}),
        (DigitalOceanDriver, "token"),
        (SimulatedDriver, {"token": 5}),
        (AWSDriver, {"access_key_id": "AKIA"}),
        (AWSDriver, {"external_id": "x"}),
    ],
)
def test_malformed_credentials_are_an_invalid_request_naming_the_shape(driver_class, credentials):
    with pytest.raises(InvalidProviderRequest, match="credentials"):
        driver_class(credentials=credentials)


# --- each account acts as itself ------------------------------------------------------------------------------


def test_digitalocean_requests_carry_the_accounts_own_token(digitalocean_api):
    alice = DigitalOceanDriver(owner_tag=OWNER, credentials={"token": digitalocean_api.token})
    mallory = DigitalOceanDriver(owner_tag=OWNER, credentials={"token": "mallory-token"})

    instance = alice.create_node(make_spec(region=DIGITALOCEAN_REGION, node_type="s-1vcpu-1gb"))
    alices_requests = list(digitalocean_api.bearer_tokens)
    with pytest.raises(AuthFailed, match="Unable to authenticate you"):
        mallory.get_node(instance_id=instance.instance_id, region=DIGITALOCEAN_REGION)

    assert alices_requests and set(alices_requests) == {digitalocean_api.token}
    assert digitalocean_api.bearer_tokens[len(alices_requests) :] == ["mallory-token"]


def test_a_simulated_account_never_sees_another_accounts_instances(db):
    options = {"owner_tag": OWNER, "provider_name": "digitalocean", "boot_seconds": 0}
    alice = SimulatedDriver(**options, credentials={"token": "alice"})
    bob = SimulatedDriver(**options, credentials={"token": "bob"})
    shared = SimulatedDriver(**options)
    spec = make_spec(region=SIMULATED_REGION, node_type="s-1vcpu-1gb")
    instance = alice.create_node(spec)

    for other in (bob, shared):
        assert other.list_nodes(region=SIMULATED_REGION) == []
        assert other.find_node(node_uuid=spec.node_uuid, region=SIMULATED_REGION) is None
        assert other.get_node(instance_id=instance.instance_id, region=SIMULATED_REGION) is None
        assert other.get_nodes(instance_ids=[instance.instance_id], region=SIMULATED_REGION) == {}
        assert other.get_quota(region=SIMULATED_REGION).in_use == 0
        other.destroy_node(instance_id=instance.instance_id, region=SIMULATED_REGION)

    # Nobody else's destroy reached it.
    assert not alice.get_node(instance_id=instance.instance_id, region=SIMULATED_REGION).is_gone
    assert [item.instance_id for item in alice.list_nodes(region=SIMULATED_REGION)] == [instance.instance_id]
    assert alice.get_quota(region=SIMULATED_REGION).in_use == 1
    assert alice.verify_account().account_id != bob.verify_account().account_id


def test_an_aws_role_is_assumed_through_sts_and_acts_as_its_own_account(ec2, moto_server, moto_ami):
    server = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, default_ami=moto_ami)
    role = AWSDriver(
        owner_tag=OWNER,
        endpoint_url=moto_server.url,
        default_ami=moto_ami,
        credentials={"role_arn": ROLE_ARN, "external_id": "tutum-alice"},
    )

    info = role.verify_account()
    instance = role.create_node(make_spec(region=AWS_REGION, node_type="t3.micro"))

    assert info.account_id == "111122223333"
    assert info.label == "arn:aws:sts::111122223333:assumed-role/tutum-nodes/tutum-api"
    assert [item.instance_id for item in role.list_nodes(region=AWS_REGION)] == [instance.instance_id]
    # moto keeps accounts apart as AWS does: the server's own account has no such instance.
    assert server.list_nodes(region=AWS_REGION) == []
    assert server.get_node(instance_id=instance.instance_id, region=AWS_REGION) is None


def test_aws_access_keys_sign_the_accounts_requests(moto_server):
    keys = {"access_key_id": "AKIAALICEEXAMPLE0001", "secret_access_key": "alice-secret"}
    driver = AWSDriver(owner_tag=OWNER, endpoint_url=moto_server.url, credentials=keys)
    sent = []
    client = driver._client(AWS_REGION, "sts")
    client.meta.events.register("before-send.sts", lambda request, **kwargs: sent.append(request.headers))

    driver.verify_account()

    assert b"Credential=AKIAALICEEXAMPLE0001/" in sent[0]["Authorization"]


def test_assuming_a_role_without_server_credentials_is_auth_failed(monkeypatch, moto_server):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    driver = AWSDriver(endpoint_url=moto_server.url, credentials={"role_arn": ROLE_ARN, "external_id": "tutum-x"})

    with pytest.raises(AuthFailed, match="source identity"):
        driver.verify_account()


# --- reason codes ------------------------------------------------------------------------------------------------


def test_every_provider_error_reason_code_is_in_the_reason_code_table():
    error_classes = [
        value
        for value in vars(providers.errors).values()
        if inspect.isclass(value) and issubclass(value, ProviderError)
    ]

    assert len(error_classes) >= 8
    assert {klass.reason_code for klass in error_classes} <= set(ReasonCode.values)
    assert set(ReasonCode.values) >= providers.errors.PROVIDER_REASON_CODES


def test_boto3_is_not_left_pointing_at_a_users_account(moto_server):
    # A user's keys live in their driver's session only; a plain boto3 client still uses the environment's.
    AWSDriver(endpoint_url=moto_server.url, credentials={"access_key_id": "AKIAUSER", "secret_access_key": "s"})

    assert boto3.session.Session().get_credentials().access_key == "testing"
