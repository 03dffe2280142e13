"""Accounts tests: a DigitalOcean API double that keeps each token's droplets apart, and linking helpers."""

import json
import re

import pytest
import responses

from nodeclusters.services.accounts import account_credentials
from tests.providers.digitalocean_fake import API, FakeDigitalOcean, _json

ACCOUNT_URL = re.compile(rf"^{re.escape(API)}/v2/account$")
LIMIT_REACHED = {
    "id": "unprocessable_entity",
    "message": "creating this/these droplet(s) will exceed your droplet limit",
}


class MultiAccountDigitalOcean(FakeDigitalOcean):
    """FakeDigitalOcean with one account per token: each sees and counts only its own droplets (as the real API
    does), has its own droplet limit, and every request is recorded with the token that made it."""

    def __init__(self, mock: responses.RequestsMock, *, accounts: dict[str, int]) -> None:
        """`accounts`: token -> droplet limit."""
        self.accounts = accounts
        self.by_token: dict[str, dict] = {token: {} for token in accounts}
        self.requests: list[tuple[str, str, str]] = []  # (token, method, path)
        self.created_with: dict[str, list[dict]] = {token: [] for token in accounts}
        super().__init__(mock, token="")
        mock.add_callback(responses.GET, ACCOUNT_URL, callback=self._account)

    def _token(self, request) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        self.requests.append((token, request.method, request.url.split("?")[0].removeprefix(API)))
        return token if token in self.accounts else None

    def _as_account(self, request, handler):
        token = self._token(request)
        if token is None:
            return _json(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
        self.token = token
        self.droplets = self.by_token[token]
        if handler == "create":
            if len(self.droplets) >= self.accounts[token]:
                return _json(422, LIMIT_REACHED)
            self.created_with[token].append(json.loads(request.body))
        return getattr(FakeDigitalOcean, f"_{handler}")(self, request)

    def _create(self, request):
        return self._as_account(request, "create")

    def _list(self, request):
        return self._as_account(request, "list")

    def _get(self, request):
        return self._as_account(request, "get")

    def _delete(self, request):
        return self._as_account(request, "delete")

    def _account(self, request):
        token = self._token(request)
        if token is None:
            return _json(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
        return _json(
            200,
            {
                "account": {
                    "droplet_limit": self.accounts[token],
                    "floating_ip_limit": 3,
                    "email": f"{token}@example.com",
                    "uuid": f"uuid-{token}",
                    "email_verified": True,
                    "status": "active",
                    "status_message": "",
                }
            },
        )

    def tokens_used(self) -> set[str]:
        return {token for token, _, _ in self.requests}


@pytest.fixture
def real_digitalocean(settings):
    """The real DigitalOcean driver (no simulation, no shared account) against the double."""
    settings.SIMULATE_PROVIDERS = False
    settings.SHARED_PROVIDER_ACCOUNTS = []
    settings.DIGITALOCEAN_TOKEN = ""
    settings.DIGITALOCEAN_API_URL = None


@pytest.fixture
def digitalocean_api(real_digitalocean):
    """Two accounts: alice's token (limit 3 droplets) and mallory's (limit 10)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield MultiAccountDigitalOcean(mock, accounts={"alice-token-1234": 3, "mallory-token-9876": 10})


def link(client, provider: str = "digitalocean", **body):
    return client.put(f"/api/v1/provider/{provider}/credentials/", body, format="json")


def stored_token(account) -> str:
    return account_credentials(account)["token"]
