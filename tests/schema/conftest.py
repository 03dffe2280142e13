"""Fixtures of the schema tests: the realistic account every request runs against."""

import socket

import pytest

from tests.schema.world import World, build_world


@pytest.fixture(autouse=True)
def _webhook_hosts_resolve_offline(monkeypatch, settings):
    """Every webhook host a request names resolves, to a documentation address, without asking a DNS server:
    the document cannot state which names resolve, and the fuzzer's generated hosts must not reach the network."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in ("localhost", "127.0.0.1", "testserver"):
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]

    monkeypatch.setattr("nodeclusters.services.webhooks.socket.getaddrinfo", getaddrinfo)


@pytest.fixture
def world(user, catalog) -> World:
    return build_world(user)
