"""`manage.py rotatecredentialskey`: every stored secret re-encrypted under the first key, idempotently."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from nodeclusters.models import CloudAccount, IdempotencyKey
from nodeclusters.services.accounts import account_credentials
from nodeclusters.services.idempotency_keys import idempotency_key_answer_body, idempotency_key_complete
from nodeclusters.services.secrets import SecretsUnavailable, secret_encrypt
from tests import factories

pytestmark = pytest.mark.django_db


def rotate() -> str:
    out = StringIO()
    call_command("rotatecredentialskey", stdout=out)
    return out.getvalue()


def test_rotation_re_encrypts_under_the_new_key_once(user, catalog, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    account = CloudAccount.objects.create(
        owner=user,
        provider=factories.region().provider,
        kind="token",
        secret=secret_encrypt({"token": "the-token-1234"}),
        hint="1234",
    )
    settings.CREDENTIALS_KEYS = [new, old]

    assert "cloud accounts: 1 re-encrypted, 0 already under the first key" in rotate()
    assert "cloud accounts: 0 re-encrypted, 1 already under the first key" in rotate()

    settings.CREDENTIALS_KEYS = [new]  # the old key can go now
    account.refresh_from_db()
    assert account_credentials(account) == {"token": "the-token-1234"}
    settings.CREDENTIALS_KEYS = [old]
    with pytest.raises(SecretsUnavailable):
        account_credentials(account)


def test_stored_idempotent_answers_are_rotated_too(user, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    answered = IdempotencyKey.objects.create(owner=user, key="k-1", fingerprint="f" * 64)
    idempotency_key_complete(key_id=answered.pk, status_code=201, headers={}, body=b'{"secret": "shown once"}')
    IdempotencyKey.objects.create(owner=user, key="k-2", fingerprint="f" * 64)  # still running: no answer yet
    settings.CREDENTIALS_KEYS = [new, old]

    assert "idempotency keys: 1 re-encrypted, 0 already under the first key" in rotate()

    settings.CREDENTIALS_KEYS = [new]
    assert idempotency_key_answer_body(IdempotencyKey.objects.get(key="k-1")) == b'{"secret": "shown once"}'
