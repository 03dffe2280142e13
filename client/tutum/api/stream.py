"""The Stream API over websockets: the events socket (resumable by cursor) and the action logs socket.

`EventStream` is the pull side everything else is built on: `TutumEvents` (callbacks, run forever), the waits
(`wait_for`) and the CLI's `--sync` progress. A stream that cannot be reached raises `StreamUnavailable`, on which
callers fall back to polling the REST API.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

import tutum

from .exceptions import ObjectNotFound, TutumApiError, TutumAuthError

logger = logging.getLogger("python-tutum")

#: Seconds to open a socket before falling back to polling.
OPEN_TIMEOUT = 5.0
#: Keepalive: the server answers pings; a dead peer is noticed within ping_interval + ping_timeout.
PING_INTERVAL, PING_TIMEOUT = 10.0, 20.0


class StreamUnavailable(Exception):
    """The stream server could not be reached (or refused the upgrade for another reason than credentials)."""


class StreamClosed(Exception):
    """An open stream ended; `code` is the close code (1008: the client was too slow and may resume)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"stream closed ({code}) {reason}".strip())
        self.code = code


class Event(dict):
    """One event: Tutum's `type`, `action`, `parents`, `resource_uri`, `state`, plus `uuid`, `datetime` and `id`.

    A dict, as python-tutum handed it over; its keys are attributes too (`event.resource_uri`).
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def concerns(self, resource_uri: str) -> bool:
        """Whether the event is about the object or one of its children (a node of a cluster, an action on it)."""
        return self.get("resource_uri") == resource_uri or resource_uri in (self.get("parents") or [])


def stream_endpoint_url(endpoint: str) -> str:
    return "/".join([tutum.stream_url.rstrip("/"), endpoint.lstrip("/")])


def stream_headers() -> dict[str, str]:
    agent = f"python-tutum/{tutum.__version__}"
    if tutum.user_agent:
        agent = f"{tutum.user_agent} {agent}"
    headers = {"User-Agent": agent}
    headers.update(tutum.auth.get_auth_header())
    return headers


def open_socket(endpoint: str, *, open_timeout: float = OPEN_TIMEOUT) -> ClientConnection:
    """Connect to `endpoint` of the stream host; TutumAuthError on 401/403, StreamUnavailable otherwise."""
    url = stream_endpoint_url(endpoint)
    try:
        connection = connect(
            url,
            additional_headers=stream_headers(),
            user_agent_header=None,
            open_timeout=open_timeout,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=2,
            max_size=None,
        )
    except InvalidStatus as error:
        if error.response.status_code in (401, 403):
            raise TutumAuthError("Not authorized", status_code=error.response.status_code, url=url) from error
        raise StreamUnavailable(f"{url}: {error}") from error
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
        raise StreamUnavailable(f"{url}: {error}") from error
    # Entered as a context manager is (websockets 17.1 warns about a connection that never was); left by close().
    return connection.__enter__()


def parse_message(message: str | bytes) -> dict | None:
    """A message as JSON; None for one that is not (python-tutum dropped those). Stream errors are raised."""
    try:
        value = json.loads(message)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    if value.get("type") == "error":
        text = (value.get("data") or {}).get("errorMessage", "")
        if text == "UNAUTHORIZED":
            raise TutumAuthError("Not authorized")
        if text == "NOT_FOUND":
            raise ObjectNotFound("Not found on the stream server")
        raise TutumApiError(f"Stream error: {text or value}")
    return value


class EventStream:
    """One connection to `/v1/events`, read with `next(timeout)`; `reconnect()` resumes after the last event seen.

    Opened on construction: whatever commits once the constructor has returned reaches `next()`.
    """

    def __init__(self, *, since: int | None = None, open_timeout: float = OPEN_TIMEOUT) -> None:
        self.last_id = since
        self.open_timeout = open_timeout
        self._socket: ClientConnection | None = None
        self._open()

    def _open(self) -> None:
        endpoint = "events" if self.last_id is None else f"events?since={self.last_id}"
        self._socket = open_socket(endpoint, open_timeout=self.open_timeout)

    def reconnect(self) -> None:
        """Open again, resuming after the last event received (a gap only if none was ever received)."""
        self.close()
        self._open()

    def next(self, timeout: float | None) -> Event | None:
        """The next event, or None when `timeout` passes first. StreamClosed when the connection ends."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = self._socket.recv(timeout=remaining)
            except TimeoutError:
                return None
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                raise StreamClosed(code, closed.rcvd.reason if closed.rcvd else "") from closed
            value = parse_message(message)
            if value is None or value.get("type") == "auth":
                continue
            if isinstance(value.get("id"), int):
                self.last_id = value["id"]
            return Event(value)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_event_stream() -> EventStream | None:
    """An event stream, or None (logged) when the stream host cannot be reached: the caller then polls."""
    try:
        return EventStream()
    except StreamUnavailable as error:
        logger.debug("event stream unavailable, polling instead: %s", error)
        return None


def stream_action_logs(
    action_uuid: str, tail: int | None, follow: bool, log_handler: Callable[[str], Any], *, poll_interval: float = 1.0
) -> None:
    """Hand each log message (the raw JSON text, as python-tutum did) to `log_handler` until the log ends.

    Over the stream server's logs socket; over the REST API's `/action/<uuid>/logs/` when it cannot be reached.
    """
    endpoint = f"action/{action_uuid}/logs/?follow={str(bool(follow)).lower()}"
    if tail:
        endpoint = f"{endpoint}&tail={int(tail)}"
    try:
        socket = open_socket(endpoint)
    except StreamUnavailable as error:
        logger.debug("log stream unavailable, reading the log over REST: %s", error)
        _logs_over_rest(action_uuid, tail, follow, log_handler, poll_interval=poll_interval)
        return
    last_line = None
    with socket:
        try:
            for message in socket:
                value = parse_message(message)
                if value is not None and value.get("type") == "log":
                    last_line = value
                log_handler(message if isinstance(message, str) else message.decode())
        except ConnectionClosed as closed:
            if not follow:
                return
            logger.debug("log stream lost (%s); following over REST", closed)
            _logs_over_rest(action_uuid, 0, True, log_handler, poll_interval=poll_interval, after=last_line)


def _logs_over_rest(
    action_uuid: str,
    tail: int | None,
    follow: bool,
    log_handler: Callable[[str], Any],
    *,
    poll_interval: float,
    after: dict | None = None,
) -> None:
    from .action import Action

    def read() -> list[dict]:
        return Action.fetch(action_uuid).log_lines()

    lines = read()
    sent = _index_after(lines, after) if after is not None else max(0, len(lines) - (tail or 300))
    while True:
        for line in lines[sent:]:
            log_handler(json.dumps(line))
        sent = len(lines)
        if not follow:
            return
        action = Action.fetch(action_uuid)
        if action.state in ("Success", "Failed", "Canceled"):
            lines = read()
            for line in lines[sent:]:
                log_handler(json.dumps(line))
            return
        time.sleep(poll_interval)
        lines = read()


def _index_after(lines: list[dict], last: dict) -> int:
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].get("log") == last.get("log") and lines[index].get("timestamp") == last.get("timestamp"):
            return index + 1
    return 0
