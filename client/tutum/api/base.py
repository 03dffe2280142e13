"""python-tutum's object model: `Restful` objects reflecting the JSON, `Immutable` (fetch, list, refresh) and
`Mutable` (create, save, delete), plus the waits driven by the event stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from enum import Enum
from typing import Any, ClassVar, Self

from . import stream as streams
from .exceptions import TutumApiError, TutumTimeoutError, TutumWaitError
from .http import transport
from .types import FINAL_STATES, Tags, as_state, as_timestamp

logger = logging.getLogger("python-tutum")

#: Attributes holding RFC 2822 dates: they load as `Timestamp` (a str with `.datetime`).
DATE_ATTRIBUTES = frozenset(
    {"deployed_datetime", "destroyed_datetime", "last_seen", "start_date", "end_date", "created_datetime"}
)
#: A wait re-reads its object at least this often even when the stream says nothing (a missed event costs that).
RESYNC_SECONDS = 15.0


def wire_value(value: Any) -> Any:
    """A value as JSON carries it: enums as their value, API objects as their resource URI, tags as dicts."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Restful):
        return getattr(value, "resource_uri", None)
    if isinstance(value, Tags):
        return [dict(tag) for tag in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [wire_value(item) for item in value]
    if isinstance(value, dict):
        return {key: wire_value(item) for key, item in value.items()}
    return value


class Restful:
    """An API object: every JSON attribute is a Python attribute; setting one marks it for `save()`."""

    endpoint: ClassVar[str] = ""
    #: The states of this kind of object, if it has any.
    state_type: ClassVar[type[Enum] | None] = None
    #: The event `type` of this kind of object.
    event_type: ClassVar[str] = ""

    _detail_uri: str | None = None
    #: The `X-Tutum-Action-URI` of the last write ("" after a read), as python-tutum injected it.
    tutum_action_uri: str

    def __init__(self, **kwargs) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __addchanges__(self, name: str) -> None:
        changed = self.__getchanges__()
        if name not in changed:
            changed.append(name)
            self.__setchanges__(changed)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            value = self._typed(name, value)
            if value != getattr(self, name, None):
                self.__addchanges__(name)
        super().__setattr__(name, value)

    def __getchanges__(self) -> list[str]:
        return self.__dict__.get("__changedattrs__", [])

    def __setchanges__(self, value: list[str]) -> None:
        self.__dict__["__changedattrs__"] = value

    def _typed(self, name: str, value: Any) -> Any:
        if name == "tags" and isinstance(value, list):
            return Tags(value, owner=self)
        if name == "state":
            return as_state(self.state_type, value)
        if name in DATE_ATTRIBUTES:
            return as_timestamp(value)
        return value

    def _loaddict(self, data: dict) -> None:
        """Set the attributes to the JSON's values, as read from the server (nothing left to save)."""
        assert self.endpoint, f"Endpoint not specified for {type(self).__name__}"
        for key, value in data.items():
            object.__setattr__(self, key, self._typed(key, value))
        self._detail_uri = "/".join([self.endpoint, str(self.pk)])
        self.__setchanges__([])

    def _load_response(self, response) -> bool:
        if response.status_code == 204 or not response.content:
            return False
        data = response.json()
        data["tutum_action_uri"] = response.headers.get("X-Tutum-Action-URI", "")
        self._loaddict(data)
        return True

    @property
    def pk(self) -> Any:
        return getattr(self, self._pk_key(), None)

    @classmethod
    def _pk_key(cls) -> str:
        return "uuid"

    @property
    def is_dirty(self) -> bool:
        return len(self.__getchanges__()) > 0

    def _perform_action(self, action: str, params: dict | None = None, data: Any = None) -> bool:
        """POST `<object>/<action>/`; the object becomes what the server answered."""
        if not self._detail_uri:
            raise TutumApiError("You must save the object before performing this operation")
        response = transport.write("POST", "/".join([self._detail_uri, action]), json=data if data else {})
        return self._load_response(response)

    def _expand_attribute(self, attribute: str) -> Any:
        if not self._detail_uri:
            raise TutumApiError("You must save the object before performing this operation")
        data = transport.request("GET", "/".join([self._detail_uri, attribute])).json()
        return data.get(attribute) if data else None

    def get_all_attributes(self) -> dict[str, Any]:
        """Every attribute that came from (or goes to) the API."""
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    def to_dict(self) -> dict[str, Any]:
        """The attributes as JSON values (for `json.dumps`)."""
        return {name: wire_value(value) for name, value in self.get_all_attributes().items()}

    def last_action(self):
        """The Action of the last write (`tutum_action_uri`), fetched now; None if there was none."""
        from .action import Action

        uri = getattr(self, "tutum_action_uri", "")
        return Action.fetch(uri) if uri else None

    def __repr__(self) -> str:
        label = getattr(self, "name", None) or getattr(self, "uuid", None) or getattr(self, "resource_uri", "")
        state = getattr(self, "state", None)
        return f"<{type(self).__name__} {label}{f' {state}' if state else ''}>"


class Immutable(Restful):
    """An object that can be read: `fetch(pk)`, `list(**filters)` and `refresh()`."""

    @classmethod
    def _detail_path(cls, pk: str) -> str:
        if pk.startswith(("/api/", "http://", "https://")):
            return pk  # a resource URI
        return "/".join([cls.endpoint, pk])

    @classmethod
    def fetch(cls, pk: str) -> Self:
        """The object with this primary key (a uuid; `provider/name` for the catalog) or resource URI."""
        assert cls.endpoint, f"Endpoint not specified for {cls.__name__}"
        instance = cls()
        instance._load_response(transport.request("GET", cls._detail_path(pk)))
        return instance

    @classmethod
    def iter(cls, page_size: int | None = None, **filters) -> Iterator[Self]:
        """Every object matching `filters`, page after page (following `meta.next`), read as it goes."""
        assert cls.endpoint, f"Endpoint not specified for {cls.__name__}"
        params = dict(filters)
        if page_size:
            params["limit"] = page_size
        path: str | None = cls.endpoint
        while path:
            page = transport.request("GET", path, params=params).json()
            for data in page.get("objects", []):
                instance = cls()
                instance._loaddict(data)
                yield instance
            path = (page.get("meta") or {}).get("next")
            params = None  # `next` keeps the filters

    @classmethod
    def list(cls, limit: int | None = None, page_size: int | None = None, **filters) -> list[Self]:
        """All objects matching `filters` (at most `limit`), e.g. `NodeCluster.list(state="Deployed")`.

        `page_size` sets the API's page size (its `limit`); pages are followed through `meta.next`. Objects (a
        Region, a NodeCluster) may be given as filter values; they are sent as their resource URI.
        """
        found = []
        for instance in cls.iter(page_size=page_size, **filters):
            if limit and len(found) >= limit:
                break
            found.append(instance)
        return found

    def refresh(self, force: bool = False) -> bool:
        """Reload from the server; refused (False) while there are unsaved changes unless `force`."""
        if self.is_dirty and not force:
            return False
        if not self._detail_uri:
            raise TutumApiError("You must save the object before performing this operation")
        action_uri = getattr(self, "tutum_action_uri", "")
        loaded = self._load_response(transport.request("GET", self._detail_uri))
        object.__setattr__(self, "tutum_action_uri", action_uri)  # a read has no action: keep the last write's
        return loaded

    # --- waits (new) ---------------------------------------------------------------------------------------------

    def wait_for(self, state: str | Collection[str], timeout: float | None = 600, poll_interval: float = 2.0) -> Self:
        """Block until the object is in `state` (or one of several), following the event stream; returns it.

        Re-reads the object whenever an event concerns it (or one of its nodes or actions); where the stream
        cannot be reached it polls every `poll_interval` seconds. Raises TutumTimeoutError after `timeout` seconds
        (None: no limit) and TutumWaitError once the object is in a final state that is not wanted (a Terminated
        cluster will never be Deployed; a Failed action will never succeed).
        """
        wanted = {str(state)} if isinstance(state, str) else {str(one) for one in state}
        return self.wait_until(
            lambda obj: str(getattr(obj, "state", "")) in wanted,
            timeout=timeout,
            poll_interval=poll_interval,
            describe=" or ".join(sorted(wanted)),
            hopeless=lambda obj: self._final(obj) and str(obj.state) not in wanted,
        )

    def wait_until(
        self,
        predicate: Callable[[Self], bool],
        *,
        timeout: float | None = 600,
        poll_interval: float = 2.0,
        describe: str = "the condition",
        hopeless: Callable[[Self], bool] | None = None,
        on_event: Callable[[streams.Event], Any] | None = None,
    ) -> Self:
        """Block until `predicate(self)` holds after a refresh (see `wait_for`)."""
        uri = getattr(self, "resource_uri", None)
        if not uri:
            raise TutumApiError("You must save the object before waiting for it")
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = streams.open_event_stream()  # subscribed before the first read: no change can slip between
        try:
            while True:
                self.refresh(force=True)
                if predicate(self):
                    return self
                if hopeless is not None and hopeless(self):
                    raise TutumWaitError(f"{self._label()} is {self.state}; it will not become {describe}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TutumTimeoutError(
                        f"{self._label()} is still {getattr(self, 'state', '?')} after {timeout:g} s, not {describe}"
                    )
                window = RESYNC_SECONDS if remaining is None else min(RESYNC_SECONDS, remaining)
                if stream is None:
                    time.sleep(min(poll_interval, window))
                    continue
                stream = _wait_for_event(stream, uri, window, on_event)
        finally:
            if stream is not None:
                stream.close()

    def _label(self) -> str:
        name = getattr(self, "name", None)
        return f"{type(self).__name__} {name or getattr(self, 'uuid', '')}"

    def _final(self, obj) -> bool:
        return getattr(obj, "state", None) in FINAL_STATES.get(self.event_type, set())


def _wait_for_event(stream, uri: str, window: float, on_event) -> streams.EventStream | None:
    """Read events until one concerns `uri` or `window` passes; the stream to go on with (None: poll from now)."""
    deadline = time.monotonic() + window
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return stream
        try:
            event = stream.next(timeout=remaining)
        except streams.StreamClosed:
            try:
                stream.reconnect()
            except streams.StreamUnavailable:
                return None
            return stream  # the caller re-reads the object: whatever the gap held is seen
        if event is None:
            return stream
        if on_event is not None:
            on_event(event)
        if event.concerns(uri):
            return stream


class Mutable(Immutable):
    """An object that can be written: `create(**attributes)` then `save()`, changes then `save()`, `delete()`."""

    @classmethod
    def create(cls, **kwargs) -> Self:
        """A new local object (nothing is sent until `save()`)."""
        return cls(**kwargs)

    def delete(self) -> bool:
        """DELETE the object; it becomes what the server answered (e.g. a cluster in `Terminating`)."""
        if not self._detail_uri:
            raise TutumApiError("You must save the object before performing this operation")
        response = transport.write("DELETE", self._detail_uri)
        if not self._load_response(response):
            self._detail_uri = None
            self.__setchanges__([])
        return True

    def save(self) -> bool:
        """POST a new object or PATCH the changed attributes; the object becomes what the server answered."""
        if not self.is_dirty:
            return True
        assert self.endpoint, f"Endpoint not specified for {type(self).__name__}"
        payload = {name: wire_value(getattr(self, name, None)) for name in self.__getchanges__()}
        payload.pop("tutum_action_uri", None)
        if self._detail_uri:
            response = transport.write("PATCH", self._detail_uri, json=payload)
        else:
            response = transport.write("POST", self.endpoint, json=payload)
        return self._load_response(response)


class Taggable:
    """Marks the objects with tags (for `Tag.fetch`)."""


class Triggerable:
    """python-tutum's marker; nothing here has triggers."""
