"""Secrets at rest (linked cloud credentials, webhook signing secrets): Fernet tokens under CREDENTIALS_KEYS.

`MultiFernet` encrypts with the first key and decrypts with any of them, so a new key is added in front, then
`manage.py rotatecredentialskey` re-encrypts every stored secret under it, then the old key can go.
"""

import functools
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework import status

from nodeclusters.exceptions import ServiceError


class SecretsUnavailable(ServiceError):
    """The server has no key to encrypt secrets with (an operator's setup error, not the caller's)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "This server cannot store secrets: CREDENTIALS_KEYS is not set. The operator must set it to one or more "
        "Fernet keys (python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
    )
    default_code = "secrets_unavailable"


@functools.cache
def _fernet() -> MultiFernet:
    """The keys of CREDENTIALS_KEYS (settings give `make run` and the tests a generated one under var/)."""
    if not settings.CREDENTIALS_KEYS:
        raise SecretsUnavailable()
    try:
        return MultiFernet([Fernet(key) for key in settings.CREDENTIALS_KEYS])
    except ValueError as error:
        raise SecretsUnavailable(
            f"CREDENTIALS_KEYS holds a key that is not a Fernet key (32 url-safe base64-encoded bytes): {error}"
        ) from None


@receiver(setting_changed)
def _forget_keys(*, setting, **kwargs) -> None:
    if setting == "CREDENTIALS_KEYS":
        _fernet.cache_clear()


def secret_encrypt(value: dict | str) -> str:
    """A Fernet token of the value (a dict is stored as JSON)."""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
    return _fernet().encrypt(text.encode()).decode()


def secret_decrypt(token: str, *, as_json: bool = False):
    """The clear value of a token; SecretsUnavailable if no configured key opens it."""
    try:
        text = _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretsUnavailable(
            "A stored secret cannot be decrypted with any key in CREDENTIALS_KEYS; the operator must add back the "
            "key it was encrypted with."
        ) from None
    return json.loads(text) if as_json else text


def secret_rotate(token: str) -> str:
    """The token re-encrypted under the first key (MultiFernet.rotate)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretsUnavailable("A stored secret cannot be decrypted with any key in CREDENTIALS_KEYS.") from None
