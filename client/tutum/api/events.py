"""`TutumEvents`: python-tutum's callback API on the events socket, resuming by cursor after a disconnect."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .exceptions import TutumAuthError
from .stream import Event, EventStream, StreamClosed, StreamUnavailable

logger = logging.getLogger("python-tutum")

#: Reconnect delays: at once after a connection that lived, then doubling up to the cap.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0
#: A connection that lived this long was healthy: the next reconnect starts from no delay again.
HEALTHY_SECONDS = 30.0


class TutumEvents:
    """Listen to the events of your node clusters, nodes and actions::

        events = tutum.TutumEvents()
        events.on_message(lambda event: print(event["type"], event["state"]))
        events.run_forever()

    As python-tutum's: `on_open()`, `on_message(event)` (a dict), `on_error(error)` and `on_close()` handlers, and
    `run_forever()` reconnecting after each close; bad credentials raise TutumAuthError. New: every reconnect asks
    for `?since=<id of the last event>`, so no event is missed or repeated across a disconnect; `since=` starts
    from a known cursor; `stop()` (from a handler or another thread) ends `run_forever()`.
    """

    def __init__(self, since: int | None = None, *, reconnect: bool = True) -> None:
        self.last_event_id = since
        self.reconnect = reconnect
        self.open_handler: Callable[[], Any] | None = None
        self.message_handler: Callable[[Event], Any] | None = None
        self.error_handler: Callable[[BaseException], Any] | None = None
        self.close_handler: Callable[[], Any] | None = None
        self.auth_error = False
        self._stopped = threading.Event()
        self._stream: EventStream | None = None

    def on_open(self, handler: Callable[[], Any]) -> None:
        self.open_handler = handler

    def on_message(self, handler: Callable[[Event], Any]) -> None:
        self.message_handler = handler

    def on_error(self, handler: Callable[[BaseException], Any]) -> None:
        self.error_handler = handler

    def on_close(self, handler: Callable[[], Any]) -> None:
        self.close_handler = handler

    def stop(self) -> None:
        """End `run_forever()` after the message being handled (or within a second)."""
        self._stopped.set()

    def _call(self, handler: Callable | None, *args) -> None:
        """A handler's exception goes to the error handler, as websocket-client did for python-tutum."""
        if handler is None:
            return
        try:
            handler(*args)
        except Exception as error:
            if handler is not self.error_handler and self.error_handler is not None:
                self.error_handler(error)
            else:
                logger.exception("error in a TutumEvents handler")

    def run_forever(self, *args, **kwargs) -> None:
        """Connect, hand every event to `on_message`, reconnect (resuming) on a close, until `stop()`."""
        delay = 0.0
        while not self._stopped.is_set():
            if self.auth_error:
                raise TutumAuthError("Not authorized")
            opened_at = time.monotonic()
            try:
                self._stream = EventStream(since=self.last_event_id)
            except TutumAuthError:
                self.auth_error = True
                raise
            except StreamUnavailable as error:
                self._call(self.error_handler, error)
            else:
                self._call(self.open_handler)
                self._listen()
            if self.auth_error or self._stopped.is_set() or not self.reconnect:
                break
            lived = time.monotonic() - opened_at
            delay = 0.0 if lived > HEALTHY_SECONDS else min(RECONNECT_MAX, delay * 2 or RECONNECT_FIRST)
            self._stopped.wait(delay)
        if self.auth_error:
            raise TutumAuthError("Not authorized")

    def _listen(self) -> None:
        stream = self._stream
        try:
            while not self._stopped.is_set():
                try:
                    event = stream.next(timeout=1.0)
                except TutumAuthError as error:
                    self.auth_error = True
                    self._call(self.error_handler, error)
                    return
                except StreamClosed:
                    return
                if event is None:
                    continue
                self.last_event_id = stream.last_id
                self._call(self.message_handler, event)
        finally:
            stream.close()
            self._stream = None
            self._call(self.close_handler)
