"""Webhook test fixtures: a local receiver, and webhooks allowed to target it (127.0.0.1 is a loopback address)."""

import socket

import pytest

from tests.webhooks.receiver import Receiver

PUBLIC_ADDRESS = "93.184.215.14"


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def private_targets(settings):
    """Webhooks may target this machine (the receiver), as an operator's own network would be allowed."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings


@pytest.fixture
def public_dns(monkeypatch):
    """`*.example.com` resolves to a public address, without asking any DNS server; other names as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if str(host).endswith("example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
