"""Each user's own cloud accounts: linking and unlinking them, and which driver serves a user's nodes.

The engine always works with the cluster owner's account (`driver_for`): the owner's linked account, else the
operator's shared account where SHARED_PROVIDER_ACCOUNTS allows it, else nothing (NoCredentials). The secret is a
Fernet token at rest (services.secrets) and is decrypted only to build a driver; it is never logged, never in an
error body and never in an action's `body`.
"""

import contextlib
import contextvars
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from nodeclusters.choices import ActionName, CredentialKind, NodeState
from nodeclusters.exceptions import ObjectNotFound, ServiceError
from nodeclusters.models import Action, CloudAccount, Node, Provider
from nodeclusters.wire.grammar import fullmatch, text_pattern
from providers import registry
from providers.base import (
    AccountInfo,
    AuthFailed,
    InvalidProviderRequest,
    NodeDriver,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

from .actions import RequestContext, action_record
from .locks import retried_atomic
from .secrets import secret_decrypt, secret_encrypt

logger = logging.getLogger(__name__)

#: What each provider's credentials look like: kind -> the fields it takes (all required). Providers not listed
#: (the simulated `local` cloud, and any other the operator adds) take an API token.
CREDENTIAL_FIELDS = {
    "digitalocean": {CredentialKind.TOKEN: ("token",)},
    "aws": {
        CredentialKind.ACCESS_KEY: ("access_key_id", "secret_access_key"),
        CredentialKind.ROLE: ("role_arn", "external_id"),
    },
}
DEFAULT_CREDENTIAL_FIELDS = {CredentialKind.TOKEN: ("token",)}
#: The field whose last characters are shown (`hint`): never a secret half.
HINT_FIELDS = {
    CredentialKind.TOKEN: "token",
    CredentialKind.ACCESS_KEY: "access_key_id",
    CredentialKind.ROLE: "role_arn",
}
MAX_CREDENTIAL_LENGTH = 4096
#: A credential value: not only whitespace, no NUL (the document states the same pattern).
CREDENTIAL_PATTERN = text_pattern()


class NoCredentials(PermanentProviderError):
    """The user has linked no account at the provider and the operator shares none there."""

    reason_code = "no_credentials"


class CredentialsRefused(ServiceError):
    """The provider refused the credentials (or they are malformed); nothing was stored."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The provider refused these credentials."
    default_code = "credentials_refused"


class ProviderUnreachable(ServiceError):
    """The provider could not be asked to verify the credentials right now; nothing was stored."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The provider could not be reached to verify the credentials; nothing was stored. Try again."
    default_code = "provider_unreachable"


class ProviderAnswerUnusable(ServiceError):
    """The provider answered the verification with an error that is not about the credentials."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The provider answered with an error; nothing was stored."
    default_code = "provider_error"


class AccountInUse(ServiceError):
    """Live nodes depend on the linked account (or on the account a new link would replace)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Live nodes depend on this account."
    default_code = "account_in_use"


class NotLinked(ObjectNotFound):
    default_detail = "No account is linked at this provider."


# --- which driver serves whom --------------------------------------------------------------------------------------


def shared_account_allowed(provider_name: str) -> bool:
    """Whether the operator lets users without a linked account deploy with the server's own credentials."""
    allowed = settings.SHARED_PROVIDER_ACCOUNTS
    return "*" in allowed or provider_name in allowed


def account_credentials(account: CloudAccount) -> dict:
    """The clear credentials of a linked account (only ever handed to a driver)."""
    return secret_decrypt(account.secret, as_json=True)


def account_driver(account: CloudAccount, provider_name: str) -> NodeDriver:
    """The driver of one linked account (the registry keeps one per account)."""
    return registry.get_driver(provider_name, credentials=account_credentials(account))


def shared_driver(provider_name: str) -> NodeDriver:
    """The operator's driver: catalog sync always; deploys only where `shared_account_allowed`."""
    return registry.get_driver(provider_name)


def _owner_id(owner):
    return getattr(owner, "pk", owner)


#: Set by `drivers_remembered`: the drivers `driver_for` found in this block, by (owner id, provider, existing).
_remembered: contextvars.ContextVar[dict | None] = contextvars.ContextVar("drivers_remembered", default=None)


@contextlib.contextmanager
def drivers_remembered():
    """Within this block `driver_for` looks each owner's account up once: for one request, or one task's batch of
    node steps of one cluster (a second or two), where asking again could only answer the same. A link cannot be
    made, changed or removed under live nodes, and a failed lookup is not remembered."""
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def driver_for(*, owner, provider_name: str, existing: bool = False) -> NodeDriver:
    """The driver for the owner's nodes at the provider: their linked account, else the operator's shared one where
    allowed; NoCredentials (a PermanentProviderError, reason_code "no_credentials") otherwise.

    `existing`: for work on instances that exist already (terminate, poll, health checks). Those of an owner without
    a link can only be in the operator's account (a link cannot be made or changed while the owner has live nodes
    there), so they are reached with it even after the operator stopped sharing it: nothing is stranded or leaked.
    """
    remembered = _remembered.get()
    if remembered is None:
        return _driver_for(owner=owner, provider_name=provider_name, existing=existing)
    key = (_owner_id(owner), provider_name, existing)
    if key not in remembered:
        remembered[key] = _driver_for(owner=owner, provider_name=provider_name, existing=existing)
    return remembered[key]


def _driver_for(*, owner, provider_name: str, existing: bool) -> NodeDriver:
    account = CloudAccount.objects.filter(owner_id=_owner_id(owner), provider__name=provider_name).first()
    if account is not None:
        return account_driver(account, provider_name)
    if existing or shared_account_allowed(provider_name):
        return shared_driver(provider_name)
    raise NoCredentials(
        f"No account linked at provider {provider_name!r}: link one with PUT /api/v1/provider/{provider_name}/"
        "credentials/ (the operator shares none there)"
    )


class CredentialsMissing(ServiceError):
    """An API request needs the owner's account at a provider and there is none to use."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "No account linked at this provider."
    default_code = "no_credentials"


def driver_for_request(*, owner, provider_name: str) -> NodeDriver:
    """`driver_for` in a service answering a request: no account is a 409 naming what to do, not a 500."""
    try:
        return driver_for(owner=owner, provider_name=provider_name)
    except NoCredentials as error:
        raise CredentialsMissing(str(error)) from None
    except ProviderError as error:
        raise ProviderAnswerUnusable(f"Provider {provider_name!r} cannot be used: {error}") from None


@dataclass(frozen=True)
class AccountGroup:
    """Owners whose nodes one provider listing covers: those of one linked account, or all sharing the operator's."""

    account_id: int | None  # None: the operator's shared account
    owner_ids: frozenset
    driver: NodeDriver | None
    error: ProviderError | None = None

    @property
    def label(self) -> str:
        return f"account {self.account_id}" if self.account_id else "the shared account"


def account_groups(*, provider_name: str, owner_ids) -> list[AccountGroup]:
    """The owners grouped by the account their existing instances at the provider live in, each group with its
    driver (or the error building it): a linked account's instances are only visible with its own credentials."""
    owner_ids = set(owner_ids)
    accounts = list(CloudAccount.objects.filter(provider__name=provider_name, owner_id__in=owner_ids))
    groups = []
    for account in accounts:
        owner_ids.discard(account.owner_id)
        groups.append(
            _group(account.pk, {account.owner_id}, lambda account=account: account_driver(account, provider_name))
        )
    if owner_ids:
        # Existing instances of owners without a link are in the operator's account, shared or not any more.
        groups.append(_group(None, owner_ids, lambda: shared_driver(provider_name)))
    return groups


def _group(account_id, owner_ids, build) -> AccountGroup:
    try:
        return AccountGroup(account_id, frozenset(owner_ids), build())
    except ProviderError as error:
        return AccountGroup(account_id, frozenset(owner_ids), None, error)


# --- linking ---------------------------------------------------------------------------------------------------------


def credentials_parse(*, provider_name: str, data: dict) -> tuple[str, dict]:
    """(kind, credentials) from a request body's credential fields; CredentialsRefused naming what is expected."""
    kinds = CREDENTIAL_FIELDS.get(provider_name, DEFAULT_CREDENTIAL_FIELDS)
    if settings.SIMULATE_PROVIDERS:
        # Every simulated cloud takes a token (so make run links offline) and the other kinds too, as a simulated
        # AWS account would.
        kinds = {**DEFAULT_CREDENTIAL_FIELDS, **CREDENTIAL_FIELDS["aws"]}
    expected = " or ".join("{" + ", ".join(f'"{name}"' for name in fields) + "}" for fields in kinds.values())
    for kind, fields in kinds.items():
        if any(name in data for name in fields):
            missing = [name for name in fields if name not in data]
            if missing:
                raise CredentialsRefused(f"Missing {', '.join(missing)}: provider {provider_name!r} takes {expected}.")
            credentials = {}
            for name in fields:
                value = data[name]
                if (
                    not isinstance(value, str)
                    or len(value) > MAX_CREDENTIAL_LENGTH
                    or not fullmatch(CREDENTIAL_PATTERN, value)
                ):
                    raise CredentialsRefused(
                        f"{name} must be a string of at most {MAX_CREDENTIAL_LENGTH} characters, not only whitespace, "
                        "with no NUL."
                    )
                credentials[name] = value.strip()
            extra = sorted(set(data) - set(fields) - {"label"})
            if extra:
                raise CredentialsRefused(
                    f"Unknown field(s) {', '.join(extra)}: provider {provider_name!r} takes {expected}."
                )
            return kind, credentials
    raise CredentialsRefused(f'Provider {provider_name!r} takes {expected} (and an optional "label").')


def _scrubbed(text: str, credentials: dict) -> str:
    """The text with any credential value cut out, whatever a provider's message echoes back."""
    for value in credentials.values():
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def account_verify(*, provider_name: str, credentials: dict) -> AccountInfo:
    """One cheap read call at the provider with the credentials; errors say what the provider answered."""
    try:
        return registry.get_driver(provider_name, credentials=credentials).verify_account()
    except (AuthFailed, InvalidProviderRequest) as error:
        raise CredentialsRefused(
            f"Provider {provider_name!r} refused these credentials: {_scrubbed(str(error), credentials)}"
        ) from None
    except TransientProviderError as error:
        logger.warning("verifying credentials at %s: %s", provider_name, _scrubbed(str(error), credentials))
        raise ProviderUnreachable(
            f"Provider {provider_name!r} could not be reached to verify the credentials "
            f"({_scrubbed(str(error), credentials)}); nothing was stored. Try again shortly."
        ) from None
    except ProviderError as error:
        raise ProviderAnswerUnusable(
            f"Provider {provider_name!r} answered the verification with an error: "
            f"{_scrubbed(str(error), credentials)}; nothing was stored."
        ) from None


def _live_nodes(*, owner, provider: Provider):
    return Node.objects.filter(owner_id=_owner_id(owner), region__provider=provider).exclude(state=NodeState.TERMINATED)


def credentials_uri(provider_name: str) -> str:
    return f"/api/v1/provider/{provider_name}/credentials/"


def _action_write(*, owner, name: str, provider_name: str, context: RequestContext, log: str) -> Action:
    """The audit row of a link or unlink; its body never holds the credentials (only the label, if any)."""
    return action_record(owner=owner, name=name, context=context, object_uri=credentials_uri(provider_name), log=log)


def cloud_account_link(
    *, owner, provider_name: str, data: dict, context: RequestContext
) -> tuple[CloudAccount, Action]:
    """Link (or replace) the owner's account at the provider, verified with the provider before it is stored.

    Replacing a link while live nodes exist at the provider is allowed only for the same provider account (a new
    token for it): the engine must keep reaching those nodes' instances.
    """
    provider = Provider.objects.filter(name=provider_name).first()
    if provider is None:
        raise ObjectNotFound(f"No provider {provider_name!r}; GET /api/v1/provider/ lists them.")
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > 128:
        raise CredentialsRefused("label must be a string of at most 128 characters.")
    kind, credentials = credentials_parse(provider_name=provider_name, data=data)
    info = account_verify(provider_name=provider_name, credentials=credentials)  # outside any transaction: a call
    return _account_store(
        owner=owner, provider=provider, kind=kind, label=label, credentials=credentials, info=info, context=context
    )


@retried_atomic
def _account_store(
    *, owner, provider: Provider, kind: str, label: str, credentials: dict, info: AccountInfo, context: RequestContext
) -> tuple[CloudAccount, Action]:
    """Write the verified link (and its action) in one transaction."""
    provider_name = provider.name
    limits = {**info.limits, "account_id": info.account_id}
    hint_source = credentials[HINT_FIELDS[kind]]
    current = CloudAccount.objects.filter(owner_id=_owner_id(owner), provider=provider).first()
    if _live_nodes(owner=owner, provider=provider).exists():
        same_account = current is not None and current.limits.get("account_id") == info.account_id
        if not same_account:
            where = "your linked account" if current else "the server's shared account"
            raise AccountInUse(
                f"You have live nodes at provider {provider_name!r} in {where}; these credentials are for another "
                "account. Terminate those nodes first (a new token for the same account is accepted)."
            )
    values = {
        "kind": kind,
        "label": label,
        "secret": secret_encrypt(credentials),
        "hint": hint_source[-4:],
        "limits": limits,
        "verified_at": timezone.now(),
    }
    # update_or_create: a concurrent first link of the same account cannot make a second row (the unique
    # constraint) nor fail the request.
    account, _ = CloudAccount.objects.update_or_create(owner_id=_owner_id(owner), provider=provider, defaults=values)
    action = _action_write(
        owner=owner,
        name=ActionName.PROVIDER_CREDENTIALS_LINK,
        provider_name=provider_name,
        context=context,
        log=f"Linked {kind} credentials ending in {account.hint} for account {info.account_id} at {provider_name}",
    )
    transaction.on_commit(
        lambda: logger.info("user %s linked an account at %s (…%s)", _owner_id(owner), provider_name, account.hint)
    )
    return account, action


@retried_atomic
def cloud_account_unlink(*, owner, provider_name: str, context: RequestContext) -> Action:
    """Forget the owner's account at the provider; refused while live nodes at the provider depend on it."""
    account = (
        CloudAccount.objects.select_related("provider")
        .filter(owner_id=_owner_id(owner), provider__name=provider_name)
        .first()
    )
    if account is None:
        raise NotLinked(f"No account is linked at provider {provider_name!r}.")
    live = _live_nodes(owner=owner, provider=account.provider).count()
    if live:
        raise AccountInUse(
            f"{live} live node(s) at provider {provider_name!r} run in this account; "
            "terminate them before unlinking it."
        )
    hint = account.hint
    if not CloudAccount.objects.filter(pk=account.pk).delete()[0]:
        raise NotLinked(f"No account is linked at provider {provider_name!r}.")  # a concurrent unlink won
    return _action_write(
        owner=owner,
        name=ActionName.PROVIDER_CREDENTIALS_UNLINK,
        provider_name=provider_name,
        context=context,
        log=f"Unlinked the credentials ending in {hint} at {provider_name}",
    )


def cloud_account_get(*, owner, provider_name: str) -> CloudAccount:
    account = (
        CloudAccount.objects.select_related("provider")
        .filter(owner_id=_owner_id(owner), provider__name=provider_name)
        .first()
    )
    if account is None:
        if not Provider.objects.filter(name=provider_name).exists():
            raise ObjectNotFound(f"No provider {provider_name!r}; GET /api/v1/provider/ lists them.")
        raise NotLinked(f"No account is linked at provider {provider_name!r}; link one with PUT.")
    return account


def linked_provider_ids(*, owner) -> set:
    """The providers where the owner has linked an account."""
    return set(CloudAccount.objects.filter(owner_id=_owner_id(owner)).values_list("provider_id", flat=True))


def provider_available_for(*, provider: Provider, linked_provider_ids: set) -> bool:
    """A provider's `available` for one user: offered, and the user can deploy there (own account or shared)."""
    return provider.available and (provider.pk in linked_provider_ids or shared_account_allowed(provider.name))
