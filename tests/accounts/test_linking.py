"""Linking a user's own cloud account: PUT/GET/DELETE /api/v1/provider/<name>/credentials/, secrets at rest."""

import json

import pytest
from django.db import connection

from nodeclusters.choices import NodeState
from nodeclusters.models import Action, CloudAccount
from providers.base import TransientProviderError
from providers.simulated import SimulatedDriver
from tests import factories
from tests.api.helpers import RFC2822, assert_error, header_action

from .conftest import link, stored_token

pytestmark = pytest.mark.django_db
TOKEN = "sim-token-abcdef-7890"
URL = "/api/v1/provider/digitalocean/credentials/"


@pytest.fixture(autouse=True)
def simulated_without_sharing(settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SHARED_PROVIDER_ACCOUNTS = []


def test_link_verifies_stores_and_shows_the_account_without_its_secret(client, user):
    response = link(client, token=TOKEN, label="team account")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "provider": "/api/v1/provider/digitalocean/",
        "kind": "token",
        "label": "team account",
        "hint": "7890",
        "verified_date": body["verified_date"],
        "limits": {"account_id": body["limits"]["account_id"]},
        "resource_uri": URL,
    }
    assert RFC2822.match(body["verified_date"])
    assert body["limits"]["account_id"].startswith("sim-")
    assert client.get(URL).json() == body
    account = CloudAccount.objects.get(owner=user, provider__name="digitalocean")
    assert stored_token(account) == TOKEN
    action = header_action(response)
    assert action.action == "Provider Credentials Link" and action.object_uri == URL
    assert TOKEN not in action.body and json.loads(action.body) == {"token": "[redacted]", "label": "team account"}
    assert TOKEN not in action.logs


def test_the_database_never_holds_the_token_in_clear(client, user):
    link(client, token=TOKEN)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret, hint, limits FROM {CloudAccount._meta.db_table}")
        rows = cursor.fetchall()
    assert len(rows) == 1
    assert all(TOKEN not in str(value) for value in rows[0])
    assert not Action.objects.filter(body__contains=TOKEN).exists()


def test_a_refused_token_is_a_400_naming_the_provider_answer_and_stores_nothing(client, user):
    bad = "invalid-token-0000"
    response = link(client, token=bad)

    body = assert_error(response, 400)
    assert "refused these credentials" in body["error"] and "Unable to authenticate you" in body["error"]
    assert bad not in response.content.decode()
    assert not CloudAccount.objects.exists()
    assert_error(client.get(URL), 404)


@pytest.mark.parametrize(
    "body",
    [{}, {"label": "x"}, {"token": ""}, {"token": 12}, {"token": "abcd1234", "password": "x"}, {"access_key_id": "A"}],
)
def test_malformed_credentials_are_a_400(client, body):
    assert_error(link(client, **body), 400)
    assert not CloudAccount.objects.exists()


def test_unknown_provider_is_a_404(client):
    assert_error(link(client, provider="softlayer", token=TOKEN), 404)
    assert_error(client.get("/api/v1/provider/softlayer/credentials/"), 404)


def test_an_unreachable_provider_is_a_503_and_stores_nothing(client, monkeypatch):
    def unreachable(self):
        raise TransientProviderError(f"digitalocean: get account failed: ConnectTimeout with {TOKEN}")

    monkeypatch.setattr(SimulatedDriver, "verify_account", unreachable)
    response = link(client, token=TOKEN)

    body = assert_error(response, 503)
    assert TOKEN not in body["error"]
    assert not CloudAccount.objects.exists()


def test_unlink_is_refused_while_live_nodes_depend_on_the_account(client, user):
    link(client, token=TOKEN)
    cluster = factories.make_cluster(user)
    node = factories.make_node(cluster, state=NodeState.DEPLOYED)

    body = assert_error(client.delete(URL), 409)
    assert "live node" in body["error"]
    assert CloudAccount.objects.filter(owner=user).exists()

    node.state = NodeState.TERMINATED
    node.save()
    response = client.delete(URL)
    assert response.status_code == 204
    assert header_action(response).action == "Provider Credentials Unlink"
    assert not CloudAccount.objects.filter(owner=user).exists()
    assert_error(client.get(URL), 404)
    assert_error(client.delete(URL), 404)


def test_relinking_another_account_is_refused_while_live_nodes_run_in_the_first(client, user):
    link(client, token=TOKEN)
    factories.make_node(factories.make_cluster(user), state=NodeState.DEPLOYED)

    assert_error(link(client, token="another-account-token"), 409)
    assert stored_token(CloudAccount.objects.get(owner=user)) == TOKEN
    assert link(client, token=TOKEN, label="renamed").status_code == 200  # the same account: accepted


def test_links_are_per_user(client, other_client, user, other_user):
    link(client, token=TOKEN)
    assert_error(other_client.get(URL), 404)
    assert_error(other_client.delete(URL), 404)
    assert CloudAccount.objects.filter(owner=user).exists()


def test_provider_available_is_per_user(client, other_client, settings):
    link(client, token=TOKEN)

    def available(api_client):
        return {item["name"]: item["available"] for item in api_client.get("/api/v1/provider/").json()["objects"]}

    assert available(client) == {"aws": False, "digitalocean": True, "local": False}
    assert available(other_client) == {"aws": False, "digitalocean": False, "local": False}
    assert other_client.get("/api/v1/provider/digitalocean/").json()["available"] is False
    settings.SHARED_PROVIDER_ACCOUNTS = ["local"]
    assert available(other_client) == {"aws": False, "digitalocean": False, "local": True}
    settings.SHARED_PROVIDER_ACCOUNTS = ["*"]
    assert available(other_client) == {"aws": True, "digitalocean": True, "local": True}
