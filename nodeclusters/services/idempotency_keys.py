"""Idempotency keys: claim a key before a write runs, store its answer after, prune keys past their 24 hours.

A key is claimed by inserting its row (status null: running) in a transaction of its own, committed before the
write starts: the unique constraint on (owner, key) is what lets exactly one of two requests sent at once run.
Stored answer bodies are Fernet tokens (CREDENTIALS_KEYS), as an answer may carry a secret shown once.
"""

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from nodeclusters.models import IdempotencyKey

from .secrets import SecretsUnavailable, secret_decrypt, secret_encrypt

logger = logging.getLogger(__name__)

#: How long a key and its answer are kept and replayed (Stripe's 24 hours).
DEFAULT_KEY_SECONDS = 24 * 3600
#: A key still running after this long belonged to a request that never finished (its process died): it is free.
DEFAULT_RUNNING_SECONDS = 300


def key_lifetime() -> datetime.timedelta:
    return datetime.timedelta(seconds=getattr(settings, "IDEMPOTENCY_KEY_SECONDS", DEFAULT_KEY_SECONDS))


def running_lifetime() -> datetime.timedelta:
    return datetime.timedelta(seconds=getattr(settings, "IDEMPOTENCY_RUNNING_SECONDS", DEFAULT_RUNNING_SECONDS))


@dataclass(frozen=True)
class KeyClaim:
    """The outcome of a claim: `claimed` when this request owns the key now, else the earlier request's row."""

    row: IdempotencyKey
    claimed: bool


def _expired(row: IdempotencyKey, now: datetime.datetime) -> bool:
    if row.created_at <= now - key_lifetime():
        return True
    return row.status_code is None and row.created_at <= now - running_lifetime()


def idempotency_key_claim(*, owner, key: str, fingerprint: str) -> KeyClaim:
    """Claim `key` for `owner`'s request, or return the row of the earlier request that holds it.

    The caller compares fingerprints and statuses (replay, 409 or 422). A key past its lifetime, or one whose
    request has been running implausibly long, is taken over as if it were new.
    """
    for _ in range(3):
        now = timezone.now()
        try:
            # Its own transaction, committed before the write starts: a concurrent twin sees the row at once.
            with transaction.atomic():
                row = IdempotencyKey.objects.create(owner=owner, key=key, fingerprint=fingerprint, created_at=now)
            return KeyClaim(row=row, claimed=True)
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(owner=owner, key=key).first()
        if row is None:
            continue  # released or pruned in between: claim it again
        if _expired(row, now):
            # Only this very row: if another request took the key over meanwhile, its claim stands.
            IdempotencyKey.objects.filter(pk=row.pk, created_at=row.created_at).delete()
            continue
        return KeyClaim(row=row, claimed=False)
    # Three rounds lost to other requests on the same key: the last one is running.
    return KeyClaim(row=IdempotencyKey.objects.get(owner=owner, key=key), claimed=False)


def idempotency_key_complete(*, key_id: int, status_code: int, headers: dict, body: bytes) -> None:
    """Store the answer of the request holding the key, to be replayed for its repeats.

    The body is stored encrypted, like every secret at rest: an answer may show one (a webhook's secret is shown
    once, by its create). A server that cannot encrypt stores nothing and frees the key instead.
    """
    try:
        sealed = secret_encrypt(body.decode("latin-1")).encode()  # latin-1: any bytes, back and forth
    except SecretsUnavailable:
        logger.warning("idempotency key %s: no CREDENTIALS_KEYS to encrypt its answer with; not stored", key_id)
        idempotency_key_release(key_id=key_id)
        return
    IdempotencyKey.objects.filter(pk=key_id, status_code__isnull=True).update(
        status_code=status_code, headers=headers, body=sealed, completed_at=timezone.now()
    )


def idempotency_key_answer_body(row: IdempotencyKey) -> bytes:
    """The stored answer's body, decrypted."""
    return secret_decrypt(bytes(row.body).decode()).encode("latin-1")


def idempotency_key_release(*, key_id: int) -> None:
    """Free a key whose request failed (5xx or an exception): a retry with it runs as a first request."""
    IdempotencyKey.objects.filter(pk=key_id, status_code__isnull=True).delete()


def idempotency_keys_prune(*, now: datetime.datetime | None = None) -> int:
    """Delete the keys older than their lifetime; returns how many."""
    cutoff = (now or timezone.now()) - key_lifetime()
    deleted, _ = IdempotencyKey.objects.filter(created_at__lte=cutoff).delete()
    return deleted
