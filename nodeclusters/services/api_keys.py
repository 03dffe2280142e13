"""API keys: created with a random secret shown once, stored as prefix + SHA-256 digest, revocable."""

import datetime
import hashlib
import hmac
import secrets
import string

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from nodeclusters.models import ApiKey

PREFIX_LENGTH = 10
_HEX_DIGITS = frozenset(string.hexdigits)
# Writing last_used_at on every request would turn every read into a write; once a minute is plenty.
_LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def api_key_create(*, user, label: str = "") -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the raw key, which is never retrievable again."""
    for _ in range(5):
        raw_key = secrets.token_hex(20)
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    user=user, prefix=raw_key[:PREFIX_LENGTH], digest=_digest(raw_key), label=label
                )
            return api_key, raw_key
        except IntegrityError:  # a prefix collision; astronomically rare, so just draw again
            continue
    raise RuntimeError("could not draw a unique API key prefix")


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; requests made with it are refused from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, username: str, raw_key: str) -> ApiKey | None:
    """The active key of `username` matching `raw_key` (compared in constant time), or None."""
    if len(raw_key) < PREFIX_LENGTH or not all(char in _HEX_DIGITS for char in raw_key):
        return None  # not a key we could have issued; never send it to the database
    api_key = (
        ApiKey.objects.select_related("user").filter(prefix=raw_key[:PREFIX_LENGTH], revoked_at__isnull=True).first()
    )
    if api_key is None or not hmac.compare_digest(api_key.digest, _digest(raw_key)):
        return None
    user_model = get_user_model()
    if getattr(api_key.user, user_model.USERNAME_FIELD) != username or not api_key.user.is_active:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
