"""Typed attribute values that still are the wire's values: states, dates and tags.

Each is a subclass of what python-tutum gave (str or list), so existing scripts that compare, print, slice or
`json.dumps` them see no difference, while new code gets enums, datetimes and `tags.add()`.
"""

from __future__ import annotations

import email.utils
from datetime import datetime
from enum import StrEnum
from typing import Any


class NodeClusterState(StrEnum):
    INIT = "Init"
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    PARTLY_DEPLOYED = "Partly deployed"
    SCALING = "Scaling"
    EMPTY_CLUSTER = "Empty cluster"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


class NodeState(StrEnum):
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    UNREACHABLE = "Unreachable"
    UPGRADING = "Upgrading"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


class ActionState(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    CANCELING = "Canceling"
    CANCELED = "Canceled"
    SUCCESS = "Success"
    FAILED = "Failed"


#: States an object never leaves: a wait for anything else ends there.
FINAL_STATES = {
    "nodecluster": {NodeClusterState.TERMINATED},
    "node": {NodeState.TERMINATED},
    "action": {ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED},
}


def as_state(enum: type[StrEnum] | None, value: Any) -> Any:
    """The enum member for a known state; an unknown one (a newer server) stays the plain string."""
    if enum is None or not isinstance(value, str):
        return value
    try:
        return enum(value)
    except ValueError:
        return value


class Timestamp(str):
    """An RFC 2822 date as the API sends it (`Tue, 16 Sep 2014 17:01:15 +0000`); `.datetime` parses it."""

    __slots__ = ()

    @property
    def datetime(self) -> datetime:
        return email.utils.parsedate_to_datetime(self)


def as_timestamp(value: Any) -> Any:
    return Timestamp(value) if isinstance(value, str) and value else value


def _tag(value: Any) -> dict:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"a tag is a name or {{'name': ...}}, not {value!r}")


class Tags(list):
    """A tag list (`[{"name": "web"}]`) that knows its object: `add()` and `remove()` mark it for `save()`.

    The reference's `nodecluster.tags.add("tag-1")` and `node.tags.add(["tag-1"])` work on it.
    """

    def __init__(self, items=(), owner=None) -> None:
        super().__init__(_tag(item) for item in (items or ()))
        self._owner = owner

    def names(self) -> list[str]:
        return [tag.get("name", "") for tag in self]

    def add(self, tagname: str | list[str]) -> None:
        """Add a tag or a list of tags (names); takes effect on the object's next `save()`."""
        for name in [tagname] if isinstance(tagname, str | dict) else tagname:
            tag = _tag(name)
            if tag["name"] not in self.names():
                self.append(tag)
        self._changed()

    def remove(self, tagname: str | list[str]) -> None:  # type: ignore[override]
        """Remove a tag or a list of tags (names); takes effect on the object's next `save()`."""
        gone = {tagname} if isinstance(tagname, str) else set(tagname)
        self[:] = [tag for tag in self if tag.get("name") not in gone]
        self._changed()

    def set(self, tagnames: list[str]) -> None:
        """Replace every tag."""
        self[:] = [_tag(name) for name in tagnames]
        self._changed()

    def _changed(self) -> None:
        if self._owner is not None:
            self._owner.__addchanges__("tags")
