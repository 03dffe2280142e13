"""boto3 sessions for one AWS account: the server's own chain, a user's access keys, or a role assumed through STS."""

from __future__ import annotations

import functools

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, CredentialProvider, DeferredRefreshableCredentials

from providers.errors import AuthFailed, InvalidProviderRequest

#: The session name AWS records in CloudTrail for every call made under a user's assumed role.
ROLE_SESSION_NAME = "tutum-api"


def credentials_kind(credentials: dict | None) -> str:
    """ "server" (the standard chain), "keys" (access key id and secret) or "role" (a role ARN to assume)."""
    if credentials is None:
        return "server"
    if not isinstance(credentials, dict):
        raise InvalidProviderRequest("aws: credentials must be an object")
    if credentials.get("role_arn"):
        return "role"
    if credentials.get("access_key_id") and credentials.get("secret_access_key"):
        return "keys"
    raise InvalidProviderRequest(
        'aws: credentials need "access_key_id" and "secret_access_key", or "role_arn" (and "external_id")'
    )


def build_session(
    credentials: dict | None, *, endpoint_url: str | None, region: str, config: Config
) -> boto3.session.Session:
    """A boto3 session whose clients act as the account the credentials name.

    A role is assumed with the server's own credentials (the standard chain) as the source identity, through
    botocore's refreshable assume-role credentials: they are fetched on first use and renewed before they expire,
    so a long-lived driver never calls with an expired token.
    """
    kind = credentials_kind(credentials)
    if kind == "server":
        return boto3.session.Session()
    if kind == "keys":
        return boto3.session.Session(
            aws_access_key_id=credentials["access_key_id"],
            aws_secret_access_key=credentials["secret_access_key"],
            aws_session_token=credentials.get("session_token") or None,
        )
    source = botocore.session.Session()
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise AuthFailed(
            "aws: assuming a role needs this server's own AWS credentials as the source identity, and it has none "
            "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or give the server an instance role)"
        )
    extra_args = {"RoleSessionName": ROLE_SESSION_NAME}
    if credentials.get("external_id"):
        extra_args["ExternalId"] = str(credentials["external_id"])
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            source.create_client, region_name=region, endpoint_url=endpoint_url, config=config
        ),
        source_credentials=source_credentials,
        role_arn=str(credentials["role_arn"]),
        extra_args=extra_args,
    )
    assumed = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    target = botocore.session.Session()
    # Ahead of every other provider in the chain, so the environment's keys never stand in for the user's role.
    target.get_component("credential_provider").insert_before("env", _FixedCredentialProvider(assumed))
    return boto3.session.Session(botocore_session=target)


class _FixedCredentialProvider(CredentialProvider):
    """A link in botocore's credential chain that always answers with the given (refreshable) credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "tutum-assume-role"

    def __init__(self, credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self):
        return self._credentials
