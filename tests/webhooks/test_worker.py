"""Webhooks end to end: real Celery worker and beat processes on PostgreSQL and Redis deliver to a local receiver."""

import pytest

from nodeclusters.choices import EventType, WebhookDeliveryState
from nodeclusters.models import Event, WebhookDelivery
from nodeclusters.selectors import EVENT_FIELDS
from nodeclusters.services.webhooks import webhook_create
from nodeclusters.stream.bus import event_message
from tests import factories
from tests.integration.conftest import broker_url, postgres, start_engine  # noqa: F401 (fixtures)
from tests.support.engine import wait_until

pytestmark = pytest.mark.integration
FAST_RETRIES = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "WEBHOOK_POLL_INTERVAL": "0.5",
    "WEBHOOK_RETRY_BACKOFF": "0.5",
    "WEBHOOK_RETRY_BACKOFF_MAX": "1",
}


def test_a_worker_delivers_signed_events_once_the_receiver_is_back(start_engine, user, receiver, private_targets):  # noqa: F811
    engine = start_engine(env=FAST_RETRIES, concurrency=4)
    webhook, receiver.secret, _ = webhook_create(
        owner=user, url=receiver.url, types=[EventType.NODE_CLUSTER], context=factories.CONTEXT
    )
    receiver.stop()
    cluster = factories.make_cluster(user)

    failed = wait_until(
        lambda: WebhookDelivery.objects.filter(webhook=webhook, attempts__gte=2).first(),
        timeout=60,
        what="the worker to try the delivery and retry it while the receiver is down",
        engine=engine,
    )
    assert failed.state == WebhookDeliveryState.PENDING and "Could not connect" in failed.last_error
    receiver.start()
    delivered = wait_until(
        lambda: WebhookDelivery.objects.filter(webhook=webhook, state=WebhookDeliveryState.DELIVERED).first(),
        timeout=60,
        what="the delivery once the receiver is back",
        engine=engine,
    )

    event = Event.objects.filter(object_uuid=cluster.uuid).values(*EVENT_FIELDS).get()
    assert delivered.event_id == event["sequence"] and delivered.last_status_code == 200
    assert [received.body for received in receiver.received] == [event_message(event)]
    assert receiver.received[0].signature_valid
    assert receiver.received[0].headers["X-Tutum-Event-Id"] == str(event["sequence"])
