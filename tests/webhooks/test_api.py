"""`/api/v1/webhook/`: create (the secret shown once), list, get, delete, deliveries; per user; targets checked."""

import socket

import pytest

from nodeclusters.choices import ActionName, EventType, WebhookDeliveryState
from nodeclusters.models import Action, Webhook, WebhookDelivery
from nodeclusters.services.secrets import secret_decrypt
from nodeclusters.services.webhooks import webhooks_fan_out
from tests import factories
from tests.api.helpers import assert_error, assert_rfc2822_or_none, header_action

WEBHOOKS = "/api/v1/webhook/"


def create(client, **body):
    return client.post(WEBHOOKS, body, format="json")


def test_create_shows_the_secret_once_and_stores_it_encrypted(client, user, public_dns):
    response = create(client, url="https://hooks.example.com/tutum", types=["node", "nodecluster", "node"])

    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert len(secret) == 64 and int(secret, 16) >= 0
    webhook = Webhook.objects.get(uuid=body["uuid"])
    assert webhook.owner == user
    assert webhook.secret != secret and secret not in webhook.secret
    assert secret_decrypt(webhook.secret) == secret
    assert body["resource_uri"] == f"/api/v1/webhook/{webhook.uuid}/"
    assert body["deliveries"] == f"/api/v1/webhook/{webhook.uuid}/delivery/"
    assert body["types"] == ["node", "nodecluster"]
    assert body["active"] is True
    assert_rfc2822_or_none(body["created_datetime"])
    assert body["created_datetime"] is not None
    assert body["failing_since"] is None and body["disabled_datetime"] is None
    # Recorded like every write, without the secret.
    action = header_action(response)
    assert action.action == ActionName.WEBHOOK_CREATE
    assert action.object_uri == body["resource_uri"]
    assert secret not in action.body and secret not in action.logs

    detail = client.get(body["resource_uri"])
    listing = client.get(WEBHOOKS)

    assert detail.status_code == 200 and listing.status_code == 200
    assert "secret" not in detail.json()
    assert secret.encode() not in detail.content and secret.encode() not in listing.content
    assert listing.json()["meta"]["total_count"] == 1
    assert listing.json()["objects"] == [detail.json()]
    assert {**detail.json(), "secret": secret} == body


def test_types_default_to_all(client, public_dns):
    response = create(client, url="https://hooks.example.com/")

    assert response.status_code == 201, response.content
    assert response.json()["types"] == []


def test_another_users_webhook_is_a_404(client, other_client, public_dns):
    uri = create(client, url="https://hooks.example.com/").json()["resource_uri"]

    for response in (
        other_client.get(uri),
        other_client.get(f"{uri}delivery/"),
        other_client.delete(uri),
    ):
        assert_error(response, 404)
    assert other_client.get(WEBHOOKS).json()["meta"]["total_count"] == 0
    assert client.get(uri).status_code == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "url"),
        ({"url": "ftp://hooks.example.com/"}, "http(s) URL"),
        ({"url": "hooks.example.com/tutum"}, "http(s) URL"),
        ({"url": "https://user:password@hooks.example.com/"}, "no user name, password"),
        ({"url": "https://hooks.example.com:99999/"}, "http(s) URL"),
        ({"url": " https://hooks.example.com/"}, "http(s) URL"),
        ({"url": "https://hooks.example.com/#top"}, "fragment"),
        ({"url": 42}, "http(s) URL"),
        ({"url": "https://hooks.example.com/", "types": ["container"]}, "types"),
        ({"url": "https://hooks.example.com/", "types": "node"}, "types"),
        ({"url": "https://hooks.example.com/", "secret": "mine"}, "secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, public_dns, body, words):
    error = assert_error(create(client, **body), 400)["error"]

    assert words in error
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_private_targets_are_refused_naming_the_rule(client, url, kind):
    body = assert_error(create(client, url=url), 400)

    assert f"a {kind} address" in body["error"]
    assert "WEBHOOK_ALLOW_PRIVATE_TARGETS" in body["error"]
    assert list(body["errors"]) == ["url"]
    assert not Webhook.objects.exists()
    assert not Action.objects.filter(action=ActionName.WEBHOOK_CREATE).exists()


def test_a_name_resolving_to_a_private_address_is_refused(client, monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))],
    )

    error = assert_error(create(client, url="https://internal.example.com/"), 400)["error"]

    assert "'internal.example.com' resolves to 10.0.0.5, a private address" in error


def test_a_host_that_does_not_resolve_is_refused(client, monkeypatch):
    def nowhere(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nowhere)

    assert "does not resolve" in assert_error(create(client, url="https://nowhere.invalid/"), 400)["error"]


def test_private_targets_are_allowed_with_the_setting(client, private_targets):
    response = create(client, url="http://127.0.0.1:8080/hook")

    assert response.status_code == 201, response.content
    assert Webhook.objects.get().url == "http://127.0.0.1:8080/hook"


def test_delete_removes_the_webhook_and_its_deliveries(client, user, public_dns):
    uri = create(client, url="https://hooks.example.com/").json()["resource_uri"]
    factories.make_cluster(user)
    webhooks_fan_out()
    assert WebhookDelivery.objects.exists()

    response = client.delete(uri)

    assert response.status_code == 204
    assert header_action(response).action == ActionName.WEBHOOK_DELETE
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert_error(client.get(uri), 404)
    assert_error(client.delete(uri), 404)


def test_deliveries_are_listed_newest_first(client, user, public_dns):
    uri = create(client, url="https://hooks.example.com/", types=["nodecluster"]).json()["resource_uri"]
    cluster = factories.make_cluster(user)
    factories.deploy(cluster)
    webhooks_fan_out()

    page = client.get(f"{uri}delivery/", {"limit": 1})
    everything = client.get(f"{uri}delivery/").json()

    assert page.status_code == 200
    assert page.json()["meta"]["total_count"] == 2
    assert page.json()["meta"]["next"] is not None
    assert [d["event_id"] for d in everything["objects"]] == sorted(
        (d["event_id"] for d in everything["objects"]), reverse=True
    )
    newest = everything["objects"][0]
    assert newest["type"] == EventType.NODE_CLUSTER
    assert newest["resource_uri"] == f"/api/v1/nodecluster/{cluster.uuid}/"
    assert newest["state"] == WebhookDeliveryState.PENDING
    assert newest["attempts"] == 0 and newest["last_status_code"] is None and newest["last_error"] == ""
    for name in ("created_datetime", "next_attempt_datetime", "delivered_datetime"):
        assert_rfc2822_or_none(newest[name])
    assert newest["next_attempt_datetime"] is not None and newest["delivered_datetime"] is None
