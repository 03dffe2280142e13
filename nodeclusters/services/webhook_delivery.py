"""Webhook delivery: claim a due delivery, check its target again, POST the signed event, record the outcome.

At least once and in order per object: a delivery is claimed (a short lease in `next_attempt_at`, so a worker
that dies mid-send only delays it) only while no earlier delivery of the same webhook and object is pending, and it
stays pending until the receiver answers 2xx. A failure is retried with exponential backoff and jitter until the
delivery is WEBHOOK_GIVE_UP_SECONDS old; a webhook whose every attempt failed for that long is disabled.

The POST goes to the address the target check allowed (urllib3 with that IP as the connection's host, the URL's
host in `Host` and in TLS SNI and certificate checks), so a second DNS lookup cannot swap in a private address.
"""

import datetime
import hashlib
import hmac
import logging
import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from nodeclusters.choices import WebhookDeliveryState
from nodeclusters.models import Webhook, WebhookDelivery

from .locks import lock_deliveries, lock_webhook, retried_atomic
from .secrets import secret_decrypt
from .webhooks import WebhookTargetRefused, delivery_body, webhook_disable, webhook_target_resolve

logger = logging.getLogger(__name__)

USER_AGENT = "Tutum-Webhooks/1.0"
SIGNATURE_HEADER = "X-Tutum-Signature"
EVENT_ID_HEADER = "X-Tutum-Event-Id"
_PENDING = WebhookDeliveryState.PENDING


def webhook_signature(*, secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe signs (a receiver refuses old `t`s)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- sending ------------------------------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """The POST did not get an answer (no connection, a timeout, a TLS error)."""


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>: ")


def _describe(error: Exception) -> str:
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # a subclass of ConnectTimeoutError, so first
        return _OBJECT_REPR.sub("", f"Could not connect: {error}")
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return f"timed out after {settings.WEBHOOK_TIMEOUT:g} s"
    return _OBJECT_REPR.sub("", f"{type(error).__name__}: {error}")


def webhook_post(*, url: str, address: str, body: bytes, headers: dict[str, str]) -> int:
    """POST `body` to `url` at `address` (already checked); the answer's status, or DeliveryFailed.

    No redirect is followed (it could lead anywhere, a private address included) and no retry is made here: a
    3xx is a failed attempt like any other non-2xx answer.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname  # ASCII: the URL pattern admits no other host
    port = parts.port or (443 if scheme == "https" else 80)
    host_header = host + (f":{parts.port}" if parts.port else "")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT, read=settings.WEBHOOK_TIMEOUT)
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            cert_reqs="CERT_REQUIRED",  # against the system's trusted CAs
            server_hostname=host,  # SNI
            assert_hostname=host,  # the certificate must be the URL host's, not the address's
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout)
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers={**headers, "Host": host_header},
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        response.close()  # the answer's body is not read: only its status counts
        return response.status
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise DeliveryFailed(_describe(error)) from None
    finally:
        pool.close()


# --- claiming and recording ---------------------------------------------------------------------------------------


def deliveries_due(now: datetime.datetime):
    """Pending deliveries of active webhooks whose time has come and with no earlier one of their object pending."""
    earlier_pending = WebhookDelivery.objects.filter(
        webhook_id=OuterRef("webhook_id"),
        object_uuid=OuterRef("object_uuid"),
        event_id__lt=OuterRef("event_id"),
        state=_PENDING,
    )
    return WebhookDelivery.objects.filter(state=_PENDING, next_attempt_at__lte=now, webhook__active=True).filter(
        ~Exists(earlier_pending)
    )


def webhook_delivery_claim(*, now: datetime.datetime) -> WebhookDelivery | None:
    """Take the most overdue delivery for one attempt: its `next_attempt_at` moves past the attempt's end (a lease).

    Rows another worker has locked are skipped; the conditional update makes the claim safe where row locks do
    not exist (SQLite) too.
    """
    lease = datetime.timedelta(seconds=settings.WEBHOOK_TIMEOUT * 4 + 30)
    with transaction.atomic():
        candidates = (
            lock_deliveries(deliveries_due(now))
            .order_by("next_attempt_at", "event_id")
            .values_list("pk", "next_attempt_at")[:5]
        )
        for pk, due_at in candidates:
            if WebhookDelivery.objects.filter(pk=pk, state=_PENDING, next_attempt_at=due_at).update(
                next_attempt_at=now + lease
            ):
                return WebhookDelivery.objects.select_related("webhook").get(pk=pk)
    return None


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to."""

    delivered: bool
    status_code: int | None
    error: str


def webhook_delivery_attempt(*, delivery: WebhookDelivery, now: datetime.datetime) -> Attempt:
    """Check the target again (DNS may have changed), POST the signed event, record what happened."""
    webhook = delivery.webhook
    body = delivery_body(delivery.payload)
    try:
        addresses = webhook_target_resolve(webhook.url)
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: str(delivery.event_id),
            SIGNATURE_HEADER: webhook_signature(secret=secret_decrypt(webhook.secret), body=body, timestamp=timestamp),
        }
        status_code = webhook_post(url=webhook.url, address=addresses[0], body=body, headers=headers)
    except WebhookTargetRefused as refusal:
        attempt = Attempt(False, None, f"Refused: {refusal.detail}")
    except DeliveryFailed as error:
        attempt = Attempt(False, None, str(error))
    else:
        ok = 200 <= status_code < 300
        attempt = Attempt(ok, status_code, "" if ok else f"The receiver answered HTTP {status_code}.")
    webhook_delivery_record(delivery=delivery, attempt=attempt, now=now)
    return attempt


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt: doubling from WEBHOOK_RETRY_BACKOFF up to WEBHOOK_RETRY_BACKOFF_MAX, with
    "equal jitter" (half fixed, half random) so receivers coming back are not hit by every webhook at once."""
    ceiling = min(settings.WEBHOOK_RETRY_BACKOFF * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_BACKOFF_MAX)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@retried_atomic
def webhook_delivery_record(*, delivery: WebhookDelivery, attempt: Attempt, now: datetime.datetime) -> None:
    """Write an attempt's outcome; after WEBHOOK_GIVE_UP_SECONDS of failures, give the delivery or webhook up."""
    webhook = lock_webhook(pk=delivery.webhook_id)
    if webhook is None:  # deleted meanwhile, with its deliveries
        return
    give_up = datetime.timedelta(seconds=settings.WEBHOOK_GIVE_UP_SECONDS)
    updates = {
        "attempts": delivery.attempts + 1,
        "last_status_code": attempt.status_code,
        "last_error": attempt.error[:512],
    }
    if attempt.delivered:
        updates.update(state=WebhookDeliveryState.DELIVERED, delivered_at=now)
        if webhook.failing_since is not None:
            Webhook.objects.filter(pk=webhook.pk).update(failing_since=None)
    elif now - delivery.created_at >= give_up:
        # Given up; `next_attempt_at` keeps when (pruning goes by it).
        updates.update(state=WebhookDeliveryState.FAILED, next_attempt_at=now)
    else:
        updates["next_attempt_at"] = now + datetime.timedelta(seconds=retry_delay(delivery.attempts + 1))
    WebhookDelivery.objects.filter(pk=delivery.pk, state=_PENDING).update(**updates)
    if attempt.delivered:
        return
    logger.info("webhook %s: delivery of event %s failed: %s", webhook.uuid, delivery.event_id, attempt.error)
    failing_since = webhook.failing_since or now
    if webhook.failing_since is None:
        Webhook.objects.filter(pk=webhook.pk).update(failing_since=now)
    if webhook.active and now - failing_since >= give_up:
        webhook_disable(
            webhook=webhook,
            reason=f"Every delivery failed for {settings.WEBHOOK_GIVE_UP_SECONDS} s; last: {attempt.error}",
            now=now,
        )


def webhook_deliveries_run(*, limit: int, now: datetime.datetime | None = None) -> dict[str, int]:
    """Attempt up to `limit` due deliveries, one after the other; counts of what happened.

    `now` (tests) fixes the clock for the whole run; otherwise each attempt reads it afresh.
    """
    counts = {"attempted": 0, "delivered": 0, "failed": 0}
    while counts["attempted"] < limit:
        moment = now or timezone.now()
        delivery = webhook_delivery_claim(now=moment)
        if delivery is None:
            break
        attempt = webhook_delivery_attempt(delivery=delivery, now=moment)
        counts["attempted"] += 1
        counts["delivered" if attempt.delivered else "failed"] += 1
    return counts
