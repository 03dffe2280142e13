"""`manage.py rotatecredentialskey`: re-encrypt every stored secret under the first key of CREDENTIALS_KEYS."""

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from nodeclusters.models import CloudAccount, IdempotencyKey, Webhook
from nodeclusters.services.secrets import SecretsUnavailable, secret_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt linked cloud credentials, webhook signing secrets and the stored answers of idempotency keys under "
        "the first key of CREDENTIALS_KEYS. "
        "Put the new key first, keep the old ones after it, run this, then drop the old keys. Running it twice "
        "changes nothing more."
    )

    def handle(self, *args, **options):
        if not settings.CREDENTIALS_KEYS:
            raise CommandError(str(SecretsUnavailable.default_detail))
        try:
            first = Fernet(settings.CREDENTIALS_KEYS[0])
        except ValueError as error:
            raise CommandError(f"The first key of CREDENTIALS_KEYS is not a Fernet key: {error}") from None
        try:
            with transaction.atomic():
                counts = {model: _rotate(model, first) for model in (CloudAccount, Webhook)}
                counts[IdempotencyKey] = _rotate(IdempotencyKey, first, field="body")
        except SecretsUnavailable as error:
            raise CommandError(str(error.detail)) from None
        self.stdout.write(
            ", ".join(
                f"{model._meta.verbose_name_plural}: {rotated} re-encrypted, {kept} already under the first key"
                for model, (rotated, kept) in counts.items()
            )
        )


def _rotate(model, first: Fernet, *, field: str = "secret") -> tuple[int, int]:
    """Re-encrypt the `field` of the model's rows not yet under the first key (rows locked meanwhile); how many
    were re-encrypted and how many already were under it. A binary field (a stored answer) holds the token's bytes;
    an empty one (a request still running) holds nothing to rotate."""
    rotated = kept = 0
    for pk, value in model.objects.select_for_update().values_list("pk", field):
        token = bytes(value).decode() if isinstance(value, bytes | memoryview) else value
        if not token:
            continue
        try:
            first.decrypt(token.encode())
            kept += 1
            continue
        except InvalidToken:
            pass
        new_token = secret_rotate(token)
        model.objects.filter(pk=pk).update(**{field: new_token.encode() if field == "body" else new_token})
        rotated += 1
    return rotated, kept
