"""Webhooks: where a user's events are POSTed. Creating and deleting them, checking their targets, turning the
events outbox into deliveries (fan-out), disabling a webhook that has failed for too long, pruning old deliveries.

Sending is `webhook_delivery`'s. A webhook's `cursor` is the last event (by the Stream API's `sequence`) turned into
deliveries, so fan-out is level-triggered: run it twice and nothing changes; a delivery is unique per webhook and
event, so two fan-outs at once cannot duplicate one either.
"""

import datetime
import ipaddress
import logging
import secrets
import socket
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from nodeclusters.choices import ActionName, WebhookDeliveryState
from nodeclusters.exceptions import InvalidRequest, ObjectNotFound
from nodeclusters.models import Action, Event, Webhook, WebhookDelivery
from nodeclusters.selectors import EVENT_FIELDS
from nodeclusters.wire.grammar import decimal_range_pattern, fullmatch

from .actions import SYSTEM_CONTEXT, RequestContext, action_record
from .events import events_sequence_all
from .locks import lock_webhook, retried_atomic
from .secrets import secret_encrypt

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PATH_CHARACTER = r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]"
#: What a webhook URL may be, as the API document states it: http(s), an ASCII host name or IPv4 address (an IDN
#: in its xn-- form), an optional port, path and query; no user info, no fragment. The server checks this same
#: pattern (then DNS, at creation and at each delivery).
WEBHOOK_URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://{_LABEL}(?:\.{_LABEL})*(?::{decimal_range_pattern(1, 65535)[1:-1]})?"
    rf"(?:/{_PATH_CHARACTER}*)?(?:\?(?:{_PATH_CHARACTER}|\?)*)?$"
)
URL_EXAMPLE = "https://hooks.example.com/tutum"
#: What a target may not resolve to, as `ipaddress` names it, in the words of the error message.
REFUSED_KINDS = (
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_unspecified", "unspecified"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


def webhook_uri(webhook_uuid) -> str:
    return f"/api/v1/webhook/{webhook_uuid}/"


# --- targets ------------------------------------------------------------------------------------------------------


class WebhookTargetRefused(InvalidRequest):
    """A webhook URL that is not http(s), does not resolve, or resolves to an address webhooks may not reach."""

    default_detail = "This webhook URL cannot be used."
    default_code = "webhook_target_refused"


def webhook_url_parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL; WebhookTargetRefused naming the rule it breaks."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise WebhookTargetRefused(f"The URL must be a string of at most {MAX_URL_LENGTH} characters.")
    if not url.lower().startswith(("http://", "https://")):
        raise WebhookTargetRefused("Only http:// and https:// URLs can receive webhooks.")
    if not fullmatch(WEBHOOK_URL_PATTERN, url):
        # User info is refused too: it would travel in clear in every delivery and show in the webhook list.
        raise WebhookTargetRefused(
            f"Expected a URL like {URL_EXAMPLE}: http(s), an ASCII host name (xn-- form for IDNs) or IPv4 "
            "address, an optional port from 1 to 65535, path and query; no user name, password or fragment."
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


def address_refusal(address: str) -> str | None:
    """Why an address may not receive webhooks (e.g. "loopback"), or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # IPv6 scope ids ("fe80::1%eth0") are not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for attribute, kind in REFUSED_KINDS:
        if getattr(ip, attribute):
            return kind
    return None


def webhook_target_resolve(url: str) -> list[str]:
    """The addresses a webhook URL's host resolves to, all of them allowed; WebhookTargetRefused otherwise.

    Every address must be allowed, not only the first: a client connecting to another one of them would otherwise
    reach what the check refused. With WEBHOOK_ALLOW_PRIVATE_TARGETS any address is allowed (an operator's own
    network). Called at creation and again before each delivery, so a DNS answer that changes is caught.
    """
    _, host, port = webhook_url_parse(url)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookTargetRefused(f"The host {host!r} does not resolve: {error}.") from None
    addresses = list(dict.fromkeys(answer[4][0] for answer in answers))
    if not addresses:
        raise WebhookTargetRefused(f"The host {host!r} does not resolve to any address.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        for address in addresses:
            kind = address_refusal(address)
            if kind:
                raise WebhookTargetRefused(
                    f"The host {host!r} resolves to {address}, a {kind} address: webhooks may not target private, "
                    "loopback, link-local, multicast, reserved or unspecified addresses (the operator can allow "
                    "them with WEBHOOK_ALLOW_PRIVATE_TARGETS)."
                )
    return addresses


# --- create, delete -------------------------------------------------------------------------------------------------


def _action_write(*, owner, name: str, webhook: Webhook, context: RequestContext, log: str) -> Action:
    """The audit row of a webhook write, like every other write's (synchronous: `Success` at once), and its event."""
    return action_record(owner=owner, name=name, context=context, object_uri=webhook_uri(webhook.uuid), log=log)


def webhook_create(*, owner, url: str, types: list[str], context: RequestContext) -> tuple[Webhook, str, Action]:
    """A new webhook for the owner's events from now on; returns it, its signing secret (shown once) and the action.

    The target is checked here (and again at each delivery), before the transaction: a DNS lookup can take
    seconds, and a transaction holds SQLite's write lock for every writer (the embedded default). The secret is
    stored as a Fernet token: it must be read back to sign, so it cannot be a digest like an API key.
    """
    webhook_target_resolve(url)
    return _webhook_create(owner=owner, url=url, types=types, context=context)


@retried_atomic
def _webhook_create(*, owner, url: str, types: list[str], context: RequestContext) -> tuple[Webhook, str, Action]:
    secret = secrets.token_hex(32)
    # With no webhook, nobody sequences for webhooks (`webhooks_fan_out`): what committed before this one is
    # sequenced here, so it is history below the cursor.
    history = events_sequence_all()
    webhook = Webhook.objects.create(
        owner=owner,
        url=url,
        types=sorted(set(types)),
        secret=secret_encrypt(secret),
        # From now on: what is sequenced already is history. Events of this very transaction (its action's) are
        # sequenced after it commits, so they are delivered.
        cursor=history,
    )
    action = _action_write(
        owner=owner, name=ActionName.WEBHOOK_CREATE, webhook=webhook, context=context, log=f"Webhook to {url} created"
    )
    return webhook, secret, action


@retried_atomic
def webhook_delete(*, webhook_uuid, owner, context: RequestContext) -> Action:
    """Delete one of the owner's webhooks and its deliveries (those not sent yet never will be)."""
    webhook = lock_webhook(uuid=webhook_uuid, owner=owner)
    if webhook is None:
        raise ObjectNotFound()
    action = _action_write(
        owner=owner,
        name=ActionName.WEBHOOK_DELETE,
        webhook=webhook,
        context=context,
        log=f"Webhook to {webhook.url} deleted",
    )
    webhook.delete()
    return action


def webhook_set_active(
    *, webhook_uuid, owner, context: RequestContext, active: bool | None = None
) -> tuple[Webhook, Action]:
    """Turn one of the owner's webhooks on or off (`PATCH {"active": ...}`); returns it and the action recorded.

    Turned off, it is disabled as after a day of failures: its pending deliveries fail. Turned back on, its target
    is checked again as at creation (before the transaction and the row lock, as `webhook_create` does: a webhook's
    URL never changes), the failure record is cleared, and it receives the events from now on: what happened while
    it was off is not sent (the objects' current state is one GET away). Asking for the state it is in (or leaving
    `active` out) changes nothing, and is recorded like every write.
    """
    checked = False
    if active:
        found = Webhook.objects.filter(uuid=webhook_uuid, owner=owner).values_list("url", "active").first()
        if found is None:
            raise ObjectNotFound()
        url, already = found
        if not already:
            webhook_target_resolve(url)
            checked = True
    return _webhook_set_active(webhook_uuid=webhook_uuid, owner=owner, context=context, active=active, checked=checked)


@retried_atomic
def _webhook_set_active(
    *, webhook_uuid, owner, context: RequestContext, active: bool | None, checked: bool
) -> tuple[Webhook, Action]:
    webhook = lock_webhook(uuid=webhook_uuid, owner=owner)
    if webhook is None:
        raise ObjectNotFound()
    if active is None or active == webhook.active:
        active = webhook.active
        name = ActionName.WEBHOOK_ENABLE if active else ActionName.WEBHOOK_DISABLE
        state = "enabled" if active else "disabled"
        action = _action_write(
            owner=owner, name=name, webhook=webhook, context=context, log=f"Webhook to {webhook.url} already {state}"
        )
    elif active:
        if not checked:  # disabled (given up) since it was read: rare enough to resolve under the lock
            webhook_target_resolve(webhook.url)
        # As at creation: what is sequenced already is history, this transaction's own events are delivered.
        Webhook.objects.filter(pk=webhook.pk).update(
            active=True, disabled_at=None, disabled_reason="", failing_since=None, cursor=events_sequence_all()
        )
        action = _action_write(
            owner=owner,
            name=ActionName.WEBHOOK_ENABLE,
            webhook=webhook,
            context=context,
            log=f"Webhook to {webhook.url} enabled: events from now on are delivered, none from while it was off",
        )
    else:
        action = webhook_disable(webhook=webhook, reason="turned off by its owner", now=timezone.now(), context=context)
    webhook.refresh_from_db()
    return webhook, action


def webhook_disable(
    *, webhook: Webhook, reason: str, now: datetime.datetime, context: RequestContext | None = None
) -> Action:
    """Stop delivering to a webhook (it failed for WEBHOOK_GIVE_UP_SECONDS, or its owner turned it off); its
    pending deliveries fail.

    Recorded as an action on the webhook (a system one unless `context` is the owner's request), whose `create`
    event goes out on the Stream API and to the owner's other webhooks: the event types are nodecluster, node and
    action, and an action is what fits. Called with the webhook row locked.
    """
    Webhook.objects.filter(pk=webhook.pk).update(active=False, disabled_at=now, disabled_reason=reason[:255])
    # A given-up delivery keeps in `next_attempt_at` when it was given up (what pruning goes by).
    WebhookDelivery.objects.filter(webhook=webhook, state=WebhookDeliveryState.PENDING).update(
        state=WebhookDeliveryState.FAILED, next_attempt_at=now
    )
    action = _action_write(
        owner=webhook.owner,
        name=ActionName.WEBHOOK_DISABLE,
        webhook=webhook,
        context=context or SYSTEM_CONTEXT,
        log=f"Webhook to {webhook.url} disabled: {reason}",
    )
    logger.warning("webhook %s disabled: %s", webhook.uuid, reason)
    return action


# --- fan-out ------------------------------------------------------------------------------------------------------

#: The keys of a Stream API event, in the order the stream sends them (`stream.bus.event_message`).
EVENT_KEYS = ("type", "action", "parents", "resource_uri", "state", "uuid", "datetime", "id")


def event_payload(row: dict) -> dict:
    """The Stream API's message for an event row, as data (its JSON body is `delivery_body`)."""
    from nodeclusters.stream.bus import event_message

    return orjson.loads(event_message(row))


def delivery_body(payload: dict) -> bytes:
    """The JSON a delivery POSTs: byte for byte the Stream API's message (a jsonb column does not keep key order)."""
    return orjson.dumps({key: payload[key] for key in EVENT_KEYS})


def webhooks_fan_out(*, batch: int = 500) -> int:
    """Turn sequenced events past each active webhook's cursor into deliveries; returns how many were created.

    Sequences what committed first (the stream server's job, done here too so webhooks need no stream server).
    Each webhook is handled in its own transaction: deliveries created and cursor advanced together, the row
    locked (others skip it) so two fan-outs at once do not both work on it.
    """
    if not Webhook.objects.filter(active=True).exists():
        return 0  # nothing to fan out to: sequencing is the stream server's then, not a cost every poll interval
    last = events_sequence_all()
    created = 0
    for webhook_pk in Webhook.objects.filter(active=True, cursor__lt=last).values_list("pk", flat=True):
        while True:
            count, more = _fan_out_one(webhook_pk, batch=batch)
            created += count
            if not more:
                break
    return created


@retried_atomic
def _fan_out_one(webhook_pk, *, batch: int) -> tuple[int, bool]:
    webhook = lock_webhook(skip_locked=True, pk=webhook_pk, active=True)
    if webhook is None:
        return 0, False
    rows = list(
        Event.objects.filter(owner_id=webhook.owner_id, sequence__gt=webhook.cursor)
        .order_by("sequence")
        .values(*EVENT_FIELDS)[:batch]
    )
    if not rows:
        return 0, False
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            webhook=webhook,
            event_id=row["sequence"],
            object_uuid=row["object_uuid"],
            payload=event_payload(row),
            next_attempt_at=now,
            created_at=now,
        )
        for row in rows
        if not webhook.types or row["type"] in webhook.types
    ]
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    Webhook.objects.filter(pk=webhook.pk).update(cursor=rows[-1]["sequence"])
    return len(deliveries), len(rows) == batch


# --- pruning ------------------------------------------------------------------------------------------------------


def webhook_deliveries_prune(*, now: datetime.datetime | None = None) -> int:
    """Delete deliveries finished more than WEBHOOK_RETENTION_SECONDS ago; returns how many went."""
    cutoff = (now or timezone.now()) - datetime.timedelta(seconds=settings.WEBHOOK_RETENTION_SECONDS)
    finished = Q(state=WebhookDeliveryState.DELIVERED, delivered_at__lt=cutoff) | Q(
        state=WebhookDeliveryState.FAILED, next_attempt_at__lt=cutoff
    )
    deleted, _ = WebhookDelivery.objects.filter(finished).delete()
    return deleted
