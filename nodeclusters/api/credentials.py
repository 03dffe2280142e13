"""`/api/v1/provider/<name>/credentials/`: link (PUT), show (GET) and unlink (DELETE) the caller's own account.

The secret goes in and never comes out: answers show the kind, the label, the last four characters, when the
provider last accepted it and the account limits it reported. The action recorded for a link never holds it.
"""

import json

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from nodeclusters import services
from nodeclusters.choices import CredentialKind
from nodeclusters.models import CloudAccount
from nodeclusters.services.accounts import (
    MAX_CREDENTIAL_LENGTH,
    cloud_account_get,
    cloud_account_link,
    cloud_account_unlink,
    credentials_uri,
)
from nodeclusters.wire import uris
from nodeclusters.wire.dates import format_rfc2822

from .fields import TextField
from .schema import DateField, ErrorSerializer, errors, uri_field
from .serializers import StrictSerializer
from .views.base import ACTION_HEADER, TutumAutoSchema

#: Written to the action's `body` in place of every credential value.
REDACTED = "[redacted]"


def CredentialField(**kwargs) -> TextField:
    """One credential value: what `services.accounts.credentials_parse` accepts, stated in the document."""
    return TextField(max_length=MAX_CREDENTIAL_LENGTH, required=False, **kwargs)


class CloudAccountLinkSerializer(StrictSerializer):
    """Input: one provider's credentials (which fields depends on the provider) and an optional label."""

    token = CredentialField(help_text="DigitalOcean (and simulated clouds): an API token")
    access_key_id = CredentialField(help_text="AWS: an access key id (with secret_access_key)")
    secret_access_key = CredentialField(write_only=True)
    role_arn = CredentialField(help_text="AWS: a role to assume through STS (with external_id)")
    external_id = CredentialField()
    label = TextField(max_length=128, blank=True, required=False)


class CloudAccountSerializer(serializers.Serializer):
    """Output: a linked account, without its secret."""

    provider = uri_field("provider")
    kind = serializers.ChoiceField(choices=CredentialKind.choices)
    label = serializers.CharField()
    hint = serializers.CharField(help_text="The last four characters of the token, access key id or role ARN")
    verified_date = DateField()
    limits = serializers.DictField(help_text="What the provider said about the account (e.g. droplet_limit)")
    resource_uri = serializers.CharField()

    def to_representation(self, account: CloudAccount) -> dict:
        return {
            "provider": uris.provider_uri(account.provider.name),
            "kind": account.kind,
            "label": account.label,
            "hint": account.hint,
            "verified_date": format_rfc2822(account.verified_at),
            "limits": account.limits,
            "resource_uri": credentials_uri(account.provider.name),
        }


#: Links and unlinks answer with the resource URI of the action they recorded, like every write.
ACTION_HEADER_PARAMETER = OpenApiParameter(
    ACTION_HEADER,
    {"type": "string", "pattern": r"^/api/v1/action/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/$"},
    OpenApiParameter.HEADER,
    required=True,
    response=[200, 204],
    description="Resource URI of the action this call recorded, e.g. /api/v1/action/<uuid>/",
)
PROVIDER_ERRORS = {
    502: OpenApiResponse(ErrorSerializer, description="The provider answered the check with an error"),
    503: OpenApiResponse(ErrorSerializer, description="The provider could not be reached to check the credentials"),
}


class CloudAccountView(APIView):
    """The caller's account at one provider: the engine creates their nodes there with it."""

    schema = TutumAutoSchema()

    @extend_schema(
        summary="Show your linked account at the provider", responses={200: CloudAccountSerializer, **errors(404)}
    )
    def get(self, request, name):
        account = cloud_account_get(owner=request.user, provider_name=name)
        return Response(CloudAccountSerializer(account).data)

    @extend_schema(
        summary="Link your own account at the provider (checked with the provider first)",
        request=CloudAccountLinkSerializer,
        parameters=[ACTION_HEADER_PARAMETER],
        responses={200: CloudAccountSerializer, **errors(400, 404, 409, 413, 415), **PROVIDER_ERRORS},
    )
    def put(self, request, name):
        data = self._body()
        CloudAccountLinkSerializer(data=data).is_valid(raise_exception=True)
        account, action = cloud_account_link(
            owner=request.user, provider_name=name, data=data, context=self._context(data)
        )
        return Response(CloudAccountSerializer(account).data, headers={ACTION_HEADER: uris.action_uri(action.uuid)})

    @extend_schema(
        summary="Unlink your account at the provider (refused while live nodes run in it)",
        parameters=[ACTION_HEADER_PARAMETER],
        responses={204: None, **errors(400, 404, 409, 413, 415)},
    )
    def delete(self, request, name):
        action = cloud_account_unlink(owner=request.user, provider_name=name, context=self._context(self._body()))
        return Response(status=status.HTTP_204_NO_CONTENT, headers={ACTION_HEADER: uris.action_uri(action.uuid)})

    def _body(self) -> dict:
        """The JSON body (parsing it makes a malformed or non-JSON body a 400 or 415, as on every write)."""
        data = self.request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        return data

    def _context(self, data: dict) -> services.RequestContext:
        """What the action records about the call: the body with every credential value redacted."""
        redacted = {key: (value if key == "label" else REDACTED) for key, value in data.items()}
        return services.RequestContext(
            method=self.request.method,
            path=self.request.path,
            body=json.dumps(redacted) if redacted else "",
            user_agent=self.request.headers.get("User-Agent", ""),
            ip=self.request.META.get("REMOTE_ADDR") or None,
        )
