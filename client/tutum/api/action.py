"""`Action`: the record of a write; its state, its logs (streamed), cancel and retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Immutable
from .http import transport
from .stream import stream_action_logs
from .types import ActionState, Timestamp


def default_log_handler(message: str) -> None:
    print(message)


class Action(Immutable):
    """Represents a Tutum Action object."""

    endpoint = "/action"
    state_type = ActionState
    event_type = "action"

    uuid: str
    resource_uri: str
    action: str
    object: str
    method: str
    path: str
    user_agent: str
    start_date: Timestamp | None
    end_date: Timestamp | None
    state: ActionState
    ip: str
    location: str
    body: str
    is_user_action: bool
    can_be_canceled: bool
    can_be_retried: bool

    @classmethod
    def _pk_key(cls) -> str:
        return "uuid"

    def logs(
        self, tail: int | None = None, follow: bool = True, log_handler: Callable[[str], Any] = default_log_handler
    ) -> None:
        """Hand the action's log to `log_handler`, one message (JSON text) at a time, from the Stream API.

        `tail` keeps the last lines (the server's default: 300); with `follow` it goes on until the action ends.
        """
        stream_action_logs(self.pk, tail, follow, log_handler)

    def log_lines(self, tail: int | None = None) -> list[dict]:
        """The log so far over REST: `[{"type": "log", "log": "...", "timestamp": <unix seconds>}]`."""
        params = {"tail": tail} if tail else None
        return transport.request("GET", "/".join([self.endpoint, self.pk, "logs"]), params=params).json()["objects"]

    def cancel(self) -> bool:
        """Cancel an action in Pending or In progress state."""
        return self._perform_action("cancel")

    def retry(self) -> bool:
        """Retry an action in Success, Failed or Canceled state."""
        return self._perform_action("retry")

    def wait(self, timeout: float | None = 600, poll_interval: float = 2.0) -> Action:
        """Block until the action has ended (Success, Failed or Canceled); returns it."""
        return self.wait_for(
            (ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED),
            timeout=timeout,
            poll_interval=poll_interval,
        )
