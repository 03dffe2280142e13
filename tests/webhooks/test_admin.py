"""The dashboard lists webhooks and their deliveries, and never shows the signing secret."""

import pytest
from django.test import Client

from nodeclusters.models import Webhook
from nodeclusters.services.secrets import secret_decrypt
from nodeclusters.services.webhooks import webhook_create, webhooks_fan_out
from tests import factories


@pytest.fixture
def dashboard(db, catalog) -> Client:
    web = Client()
    web.force_login(factories.make_user("root", is_staff=True, is_superuser=True))
    return web


def test_webhooks_are_listed_with_their_deliveries_and_without_the_secret(dashboard, user, private_targets):
    webhook, secret, _ = webhook_create(
        owner=user, url="http://127.0.0.1:9/hooks", types=["nodecluster"], context=factories.CONTEXT
    )
    factories.make_cluster(user)
    webhooks_fan_out()
    stored = Webhook.objects.get().secret

    listing = dashboard.get("/admin/nodeclusters/webhook/")
    detail = dashboard.get(f"/admin/nodeclusters/webhook/{webhook.uuid}/change/")

    assert listing.status_code == 200 and detail.status_code == 200
    assert b"http://127.0.0.1:9/hooks" in listing.content
    assert b"Pending" in detail.content  # the delivery of the cluster's create event
    for page in (listing, detail):
        assert secret.encode() not in page.content
        assert stored.encode() not in page.content
    assert secret_decrypt(stored) == secret
