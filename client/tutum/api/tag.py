"""python-tutum's `Tag` helper over a taggable object's `tags` (`Tag.fetch(cluster).add("web")`, then `save()`)."""

from __future__ import annotations

from .base import Taggable
from .exceptions import TutumApiError


class Tag:
    def __init__(self) -> None:
        self.taggable = None

    @classmethod
    def create(cls, **kwargs) -> Tag:
        tag = cls()
        for key, value in kwargs.items():
            setattr(tag, key, value)
        return tag

    @classmethod
    def fetch(cls, taggable) -> Tag:
        """The tags of a saved node cluster or node."""
        if not isinstance(taggable, Taggable):
            raise TutumApiError("The object does not support tag")
        if not taggable._detail_uri:
            raise TutumApiError("You must save the taggable object before performing this operation")
        tag = cls()
        tag.taggable = taggable
        return tag

    def _require(self):
        if self.taggable is None:
            raise TutumApiError("You must initialize the tag object before performing this operation")
        return self.taggable

    def add(self, tagname: str | list[str]) -> None:
        """Add a tag or a list of tags; sent by `save()`."""
        self._require().tags.add(tagname)

    def remove(self, tagname: str | list[str]) -> None:
        """Remove a tag or a list of tags; sent by `save()`."""
        self._require().tags.remove(tagname)

    def delete(self, tagname: str | list[str]) -> bool:
        """Remove a tag or a list of tags and save at once."""
        if self._require().is_dirty:
            raise TutumApiError("You must save the tag object before performing this operation")
        self.remove(tagname)
        return self.save()

    def list(self, **kwargs) -> list[dict]:
        return self._require().tags

    def save(self) -> bool:
        return self._require().save()
