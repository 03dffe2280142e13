"""Webhook test fixtures: a local receiver, and webhooks allowed to target it (127.0.0.1 is a loopback address)."""

import pytest

from tests.webhooks.receiver import Receiver


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
