"""`PATCH /api/v1/webhook/<uuid>/ {"active": ...}`: a webhook turned off by its owner, and turned back on after it
was disabled (by its owner or after a day of failures): its target checked again, the events from then on delivered
(signed with the same secret), none from while it was off."""

import socket

import pytest
from django.db import connection
from django.utils import timezone

from nodeclusters.choices import ActionName, EventType, WebhookDeliveryState
from nodeclusters.models import Webhook, WebhookDelivery
from nodeclusters.services.webhook_delivery import webhook_deliveries_run
from nodeclusters.services.webhooks import webhook_disable, webhooks_fan_out
from tests import factories
from tests.api.helpers import assert_error, assert_rfc2822_or_none, header_action

WEBHOOKS = "/api/v1/webhook/"


def _create(client, url: str, **body) -> dict:
    answer = client.post(WEBHOOKS, {"url": url, **body}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def _patch(client, uri: str, body):
    return client.patch(uri, body, format="json")


def _deliveries(uri: str) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(webhook__uuid=uri.split("/")[-2]).order_by("event_id"))


def test_turning_a_webhook_off_fails_its_pending_deliveries_and_stops_new_ones(client, user, receiver, private_targets):
    uri = _create(client, receiver.url, types=[EventType.NODE_CLUSTER])["resource_uri"]
    factories.make_cluster(user, name="before")
    webhooks_fan_out()
    assert [d.state for d in _deliveries(uri)] == [WebhookDeliveryState.PENDING]

    answer = _patch(client, uri, {"active": False})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["active"] is False and body["disabled_reason"] == "turned off by its owner"
    assert_rfc2822_or_none(body["disabled_datetime"]) and body["disabled_datetime"] is not None
    action = header_action(answer)
    assert action.action == ActionName.WEBHOOK_DISABLE and action.is_user_action
    assert action.object_uri == uri
    assert [d.state for d in _deliveries(uri)] == [WebhookDeliveryState.FAILED]
    factories.make_cluster(user, name="while-off")
    assert webhooks_fan_out() == 0
    assert client.get(uri).json()["active"] is False


def test_turning_it_back_on_delivers_what_happens_from_then_on_and_nothing_from_while_it_was_off(
    client, user, receiver, private_targets
):
    created = _create(client, receiver.url, types=[EventType.NODE_CLUSTER])
    receiver.secret = created["secret"]
    uri = created["resource_uri"]
    webhook = Webhook.objects.get(uuid=created["uuid"])
    # Disabled by the system after a day of failures, as the delivery worker does it.
    Webhook.objects.filter(pk=webhook.pk).update(failing_since=timezone.now())
    webhook_disable(webhook=webhook, reason="Every delivery failed for 86400 s", now=timezone.now())
    assert Webhook.objects.get(pk=webhook.pk).active is False
    missed = factories.make_cluster(user, name="while-off")

    answer = _patch(client, uri, {"active": True})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["active"] is True
    assert body["disabled_datetime"] is None and body["disabled_reason"] == "" and body["failing_since"] is None
    action = header_action(answer)
    assert action.action == ActionName.WEBHOOK_ENABLE and action.is_user_action
    assert "none from while it was off" in action.logs
    seen = factories.make_cluster(user, name="after")
    webhooks_fan_out()
    assert webhook_deliveries_run(limit=10)["delivered"] == 1
    assert [received.event["uuid"] for received in receiver.received] == [str(seen.uuid)]
    assert str(missed.uuid) not in {received.event["uuid"] for received in receiver.received}
    assert all(received.signature_valid for received in receiver.received)  # the secret shown at creation


@pytest.mark.parametrize("body", [{"active": True}, {}])
def test_asking_for_the_state_it_is_in_changes_nothing_and_is_recorded(client, user, receiver, private_targets, body):
    uri = _create(client, receiver.url)["resource_uri"]
    factories.make_cluster(user)
    webhooks_fan_out()
    pending = len(_deliveries(uri))

    answer = _patch(client, uri, body)

    assert answer.status_code == 200 and answer.json()["active"] is True
    assert header_action(answer).action == ActionName.WEBHOOK_ENABLE
    assert "already enabled" in header_action(answer).logs
    assert [d.state for d in _deliveries(uri)] == [WebhookDeliveryState.PENDING] * pending


def test_turning_it_back_on_checks_the_target_again(client, user, public_dns, monkeypatch):
    uri = _create(client, "https://hooks.example.com/tutum")["resource_uri"]
    webhook = Webhook.objects.get()
    webhook_disable(webhook=webhook, reason="Every delivery failed for 86400 s", now=timezone.now())
    # Meanwhile the name has been pointed at the cloud's metadata service.
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *args, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))],
    )

    body = assert_error(_patch(client, uri, {"active": True}), 400)

    assert "169.254.169.254" in body["errors"]["url"][0] and "link-local" in body["errors"]["url"][0]
    assert Webhook.objects.get().active is False


@pytest.mark.django_db(transaction=True)
def test_the_target_is_looked_up_outside_any_transaction(client, user, public_dns, monkeypatch):
    """A DNS answer can take seconds. Inside the service's transaction the lookup would hold the webhook's row lock,
    and on the embedded default SQLite's write lock: every writer, the engine's too, would wait for it."""
    in_a_transaction = []
    resolve = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.example.com":  # not the database's host, which psycopg looks up too
            in_a_transaction.append(connection.in_atomic_block)
        return resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    uri = _create(client, "https://hooks.example.com/tutum")["resource_uri"]
    assert _patch(client, uri, {"active": False}).status_code == 200
    assert _patch(client, uri, {"active": True}).status_code == 200
    assert _patch(client, uri, {"active": True}).status_code == 200  # already on: nothing to check

    assert in_a_transaction == [False, False]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"active": "true"}, "active"),
        ({"active": 1}, "active"),
        ({"active": None}, "active"),
        ({"active": True, "url": "https://elsewhere.example.com/"}, "url"),
        ([True], "non_field_errors"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, public_dns, payload, field):
    uri = _create(client, "https://hooks.example.com/tutum")["resource_uri"]

    body = assert_error(_patch(client, uri, payload), 400)

    assert field in body["errors"]
    assert Webhook.objects.get().active is True


def test_another_users_webhook_is_a_404(client, other_client, public_dns):
    uri = _create(client, "https://hooks.example.com/tutum")["resource_uri"]

    assert_error(_patch(other_client, uri, {"active": False}), 404)

    assert Webhook.objects.get().active is True
