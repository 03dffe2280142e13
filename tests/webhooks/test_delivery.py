"""Fan-out and delivery, driven in process: signed POSTs to a local receiver, retries, order per object, refusal of
private addresses at delivery, giving up, pruning."""

import datetime
import socket

import pytest
from django.utils import timezone

from nodeclusters.choices import ActionName, EventAction, EventType, WebhookDeliveryState
from nodeclusters.models import Action, Event, Webhook, WebhookDelivery
from nodeclusters.selectors import EVENT_FIELDS
from nodeclusters.services.events import event_record, node_event
from nodeclusters.services.webhook_delivery import retry_delay, webhook_deliveries_run
from nodeclusters.services.webhooks import (
    webhook_create,
    webhook_deliveries_prune,
    webhooks_fan_out,
)
from nodeclusters.stream.bus import event_message
from tests import factories

pytestmark = pytest.mark.django_db
PENDING, DELIVERED, FAILED = WebhookDeliveryState.PENDING, WebhookDeliveryState.DELIVERED, WebhookDeliveryState.FAILED


def make_webhook(owner, receiver, *, types=(), url=None) -> Webhook:
    webhook, secret, _ = webhook_create(
        owner=owner, url=url or receiver.url, types=list(types), context=factories.CONTEXT
    )
    receiver.secret = secret
    return webhook


def later(seconds: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def test_events_are_posted_signed_and_exactly_as_the_stream_sends_them(user, receiver, private_targets):
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    cluster = factories.make_cluster(user)
    factories.deploy(cluster)

    created = webhooks_fan_out()
    counts = webhook_deliveries_run(limit=10)

    events = list(Event.objects.filter(type=EventType.NODE_CLUSTER).order_by("sequence").values(*EVENT_FIELDS))
    assert created == 2 and counts == {"attempted": 2, "delivered": 2, "failed": 0}
    assert [received.body for received in receiver.received] == [event_message(row) for row in events]
    for received, row in zip(receiver.received, events, strict=True):
        assert received.signature_valid
        assert received.path == "/hooks/tutum?source=test"
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["User-Agent"].startswith("Tutum-Webhooks/")
        assert received.headers["X-Tutum-Event-Id"] == str(row["sequence"]) == str(received.event["id"])
        assert received.headers["Host"] == f"127.0.0.1:{receiver.port}"
        assert abs(received.timestamp - timezone.now().timestamp()) < 60
    deliveries = WebhookDelivery.objects.filter(webhook=webhook)
    assert {(d.state, d.attempts, d.last_status_code) for d in deliveries} == {(DELIVERED, 1, 200)}
    assert all(d.delivered_at is not None for d in deliveries)


def test_a_signature_made_with_another_secret_does_not_verify(user, receiver, private_targets):
    make_webhook(user, receiver)
    receiver.secret = "not-the-secret"
    factories.make_cluster(user)

    webhooks_fan_out()
    webhook_deliveries_run(limit=10)

    assert receiver.received and not any(received.signature_valid for received in receiver.received)


def test_without_a_webhook_the_fan_out_leaves_the_outbox_alone(user):
    # Beat runs it every WEBHOOK_POLL_INTERVAL: with no webhook it must not sequence a fleet's events each time.
    factories.make_cluster(user, name="busy")
    assert Event.objects.filter(sequence__isnull=True).exists()

    assert webhooks_fan_out() == 0

    assert not Event.objects.filter(sequence__isnull=False).exists()


def test_fan_out_follows_the_owner_types_and_cursor_and_runs_twice_harmlessly(
    user, other_user, receiver, private_targets
):
    factories.make_cluster(user, name="before")  # before the webhook: history, not delivered
    webhooks_fan_out()
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER, EventType.NODE])
    mine = factories.make_cluster(user, name="mine")  # a nodecluster and an action event: only the first is wanted
    factories.make_cluster(other_user, name="theirs")
    node = factories.make_node(mine)
    event_record(node_event(node, EventAction.CREATE))

    assert webhooks_fan_out() == 2
    assert webhooks_fan_out() == 0

    deliveries = WebhookDelivery.objects.filter(webhook=webhook).order_by("event_id")
    assert [(d.payload["type"], d.payload["action"], d.payload["uuid"]) for d in deliveries] == [
        ("nodecluster", "create", str(mine.uuid)),
        ("node", "create", str(node.uuid)),
    ]
    webhook.refresh_from_db()
    assert webhook.cursor == Event.objects.order_by("-sequence").values_list("sequence", flat=True).first()


def test_retries_after_the_receiver_was_down_keep_the_order_per_object(user, receiver, private_targets):
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    first, second = factories.make_cluster(user, name="first"), factories.make_cluster(user, name="second")
    for cluster in (first, second):
        factories.deploy(cluster)  # each cluster: create, then update (Deploying)
    webhooks_fan_out()
    receiver.stop()

    down = webhook_deliveries_run(limit=10)

    # Only the first event of each cluster was tried: the later one waits behind it.
    assert down == {"attempted": 2, "delivered": 0, "failed": 2}
    attempts = dict(WebhookDelivery.objects.filter(webhook=webhook).values_list("event_id", "attempts"))
    assert sorted(attempts.values()) == [0, 0, 1, 1]
    tried = WebhookDelivery.objects.filter(webhook=webhook, attempts=1)
    assert all("Connection refused" in d.last_error or "ConnectionRefused" in d.last_error for d in tried), [
        d.last_error for d in tried
    ]
    assert all(d.next_attempt_at >= timezone.now() + datetime.timedelta(seconds=2) for d in tried)
    webhook.refresh_from_db()
    assert webhook.failing_since is not None and webhook.active

    assert webhook_deliveries_run(limit=10)["attempted"] == 0  # not due yet
    receiver.start()  # back, on the same port
    up = webhook_deliveries_run(limit=10, now=later(60))

    assert up == {"attempted": 4, "delivered": 4, "failed": 0}
    assert all(received.signature_valid for received in receiver.received)
    for cluster in (first, second):
        ids = [r.event["id"] for r in receiver.received if r.event["uuid"] == str(cluster.uuid)]
        states = [r.event["state"] for r in receiver.received if r.event["uuid"] == str(cluster.uuid)]
        assert ids == sorted(ids) and states == ["Init", "Deploying"]
    webhook.refresh_from_db()
    assert webhook.failing_since is None
    assert set(WebhookDelivery.objects.filter(webhook=webhook).values_list("state", flat=True)) == {DELIVERED}


def test_a_non_2xx_answer_is_a_failed_attempt(user, receiver, private_targets):
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    factories.make_cluster(user)
    webhooks_fan_out()
    receiver.statuses.extend([500, 302])

    webhook_deliveries_run(limit=1)
    webhook_deliveries_run(limit=1, now=later(3600))
    webhook_deliveries_run(limit=1, now=later(7200))

    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert len(receiver.received) == 3
    assert (delivery.state, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        DELIVERED,
        3,
        200,
        "",
    )


def test_backoff_doubles_with_jitter_up_to_the_cap(settings):
    settings.WEBHOOK_RETRY_BACKOFF = 5
    settings.WEBHOOK_RETRY_BACKOFF_MAX = 3600

    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (10, 2560), (11, 3600), (40, 3600)]:
        delays = [retry_delay(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempts, delays)
        assert len(set(delays)) > 1  # jittered


def test_a_name_that_now_resolves_to_a_private_address_is_refused_at_delivery(user, receiver, settings, monkeypatch):
    """Checked again at delivery, after DNS: the name pointed at a public address when created, now at 127.0.0.1."""
    real = socket.getaddrinfo
    answers = {"hooks.example.com": "93.184.215.14"}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    webhook = make_webhook(user, receiver, url=f"http://hooks.example.com:{receiver.port}/hooks")
    factories.make_cluster(user)
    webhooks_fan_out()
    answers["hooks.example.com"] = "127.0.0.1"  # where the receiver listens

    counts = webhook_deliveries_run(limit=10)

    assert counts["delivered"] == 0 and counts["failed"] >= 1
    assert receiver.received == []
    delivery = WebhookDelivery.objects.filter(webhook=webhook, attempts=1).first()
    assert delivery.state == PENDING
    assert "resolves to 127.0.0.1, a loopback address" in delivery.last_error


def test_localhost_is_refused_at_delivery_once_the_setting_is_off(user, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    webhook = make_webhook(user, receiver, url=f"http://localhost:{receiver.port}/", types=[EventType.NODE_CLUSTER])
    factories.make_cluster(user)
    webhooks_fan_out()
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    webhook_deliveries_run(limit=10)

    assert receiver.received == []
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (PENDING, 1, None)
    assert "loopback" in delivery.last_error


def test_a_webhook_failing_for_the_give_up_window_is_disabled_with_an_event(user, receiver, private_targets):
    private_targets.WEBHOOK_GIVE_UP_SECONDS = 600
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    factories.make_cluster(user)
    webhooks_fan_out()
    receiver.statuses.extend([503] * 10)
    start = timezone.now()

    webhook_deliveries_run(limit=10, now=start)
    webhook_deliveries_run(limit=10, now=start + datetime.timedelta(seconds=300))
    webhook.refresh_from_db()
    assert webhook.active and webhook.failing_since == start

    webhook_deliveries_run(limit=10, now=start + datetime.timedelta(seconds=601))

    webhook.refresh_from_db()
    assert not webhook.active
    assert webhook.disabled_at == start + datetime.timedelta(seconds=601)
    assert "Every delivery failed for 600 s" in webhook.disabled_reason and "HTTP 503" in webhook.disabled_reason
    assert set(WebhookDelivery.objects.filter(webhook=webhook).values_list("state", flat=True)) == {FAILED}
    action = Action.objects.get(action=ActionName.WEBHOOK_DISABLE)
    assert action.object_uri == f"/api/v1/webhook/{webhook.uuid}/" and not action.is_user_action
    assert Event.objects.filter(type=EventType.ACTION, object_uuid=action.uuid).exists()
    # Disabled: nothing more is sent, and new events make no deliveries.
    factories.make_cluster(user, name="after")
    sent = len(receiver.received)
    assert webhooks_fan_out() == 0
    assert webhook_deliveries_run(limit=10, now=start + datetime.timedelta(seconds=7200))["attempted"] == 0
    assert len(receiver.received) == sent == 3


def test_a_success_in_between_keeps_the_webhook_active(user, receiver, private_targets):
    private_targets.WEBHOOK_GIVE_UP_SECONDS = 600
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    factories.make_cluster(user)
    factories.make_cluster(user, name="two")
    webhooks_fan_out()
    receiver.statuses.extend([503, 200, 503])
    start = timezone.now()

    webhook_deliveries_run(limit=2, now=start)  # one fails, one is delivered
    webhook_deliveries_run(limit=10, now=start + datetime.timedelta(seconds=601))

    webhook.refresh_from_db()
    assert webhook.active and webhook.failing_since == start + datetime.timedelta(seconds=601)
    # The delivery itself was 601 s old: given up on its own.
    assert sorted(WebhookDelivery.objects.filter(webhook=webhook).values_list("state", flat=True)) == [
        DELIVERED,
        FAILED,
    ]


def test_finished_deliveries_are_pruned_after_the_retention_window(user, receiver, private_targets):
    webhook = make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    for name in ("a", "b", "c"):
        factories.make_cluster(user, name=name)
    webhooks_fan_out()
    old, failed, pending = WebhookDelivery.objects.filter(webhook=webhook).order_by("event_id")
    day_ago = timezone.now() - datetime.timedelta(hours=25)
    WebhookDelivery.objects.filter(pk=old.pk).update(state=DELIVERED, delivered_at=day_ago)
    WebhookDelivery.objects.filter(pk=failed.pk).update(state=FAILED, next_attempt_at=day_ago)
    WebhookDelivery.objects.filter(pk=pending.pk).update(next_attempt_at=day_ago, created_at=day_ago)

    assert webhook_deliveries_prune() == 2

    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [pending.pk]


def test_the_beat_tasks_fan_out_deliver_and_prune(user, receiver, private_targets, settings):
    from nodeclusters import tasks

    assert settings.CELERY_BEAT_SCHEDULE["webhooks-dispatch"]["task"] == tasks.webhooks_dispatch.name
    assert settings.CELERY_BEAT_SCHEDULE["prune-webhook-deliveries"]["task"] == tasks.prune_webhook_deliveries.name
    make_webhook(user, receiver, types=[EventType.NODE_CLUSTER])
    factories.make_cluster(user)

    assert tasks.webhooks_dispatch() == {"created": 1, "attempted": 1, "delivered": 1, "failed": 0}
    assert len(receiver.received) == 1 and receiver.received[0].signature_valid
    assert tasks.prune_webhook_deliveries() == 0  # delivered just now: kept for the retention window
    settings.WEBHOOK_RETENTION_SECONDS = 0
    assert tasks.prune_webhook_deliveries() == 1
