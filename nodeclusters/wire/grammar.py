"""What every input of the API accepts, as patterns: written once, stated by the OpenAPI document (`api/schema.py`)
and checked by the serializers and filters, so the document and the server cannot disagree.

Patterns use only what ECMA-262 (validators, generated clients) and Python's `re` read alike: character classes
with `\\xNN`/`\\uNNNN` escapes and `[0-9]`, never `\\d`, `\\s` or `\\w`, whose meanings differ between the two.
"""

import re
from collections.abc import Iterable

from nodeclusters.catalog import CATALOG

DATE_EXAMPLE = "Tue, 16 Sep 2014 17:01:15 +0000"
RFC2822_PATTERN = r"^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} \+0000$"

# --- building blocks of the patterns ------------------------------------------------------------------------------

#: What Python's `str.strip()` trims (`str.isspace()`), spelled out: ECMA-262's `\s` is another set.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Characters no tag name may contain: control characters, line and paragraph separators, bidirectional controls.
TAG_FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
#: A uuid as the API takes it in paths and filters: hex digits in any case, each dash optional.
UUID_REGEX = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
#: `https://host[:port]` before a resource URI's path: full URLs are accepted wherever a resource URI is.
_ORIGIN = r"(?:https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)?"
#: One name in a catalog URI (`digitalocean`, `t2.micro`): no slash, no space or control character.
_SEGMENT = r"[^/?#\x00-\x20\x7f]+"
_URI_PATHS = {
    "provider": rf"provider/{_SEGMENT}",
    "region": rf"region/{_SEGMENT}/{_SEGMENT}",
    "az": rf"az/{_SEGMENT}/{_SEGMENT}/{_SEGMENT}",
    "nodetype": rf"nodetype/{_SEGMENT}/{_SEGMENT}",
    "nodecluster": rf"nodecluster/{UUID_REGEX}",
    "node": rf"node/{UUID_REGEX}",
}


def fullmatch(pattern: str, value) -> bool:
    """Whether `value` is a string the document's `pattern` admits (anchored at both ends, as validators read it)."""
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def uri_input_pattern(*kinds: str) -> str:
    """A resource URI of one of `kinds` as the API accepts it: the path, or a full URL; the last slash optional."""
    paths = "|".join(_URI_PATHS[kind] for kind in kinds)
    return rf"^{_ORIGIN}/api/v1/(?:{paths})/?$"


def _names(names: Iterable[str]) -> str:
    for name in names:
        assert re.fullmatch(r"[a-z0-9.-]+", name), name  # catalog names need no escaping but the dot
    return "|".join(name.replace(".", r"\.") for name in sorted(names))


def catalog_uri_pattern(kind: str, provider: str) -> str:
    """A region or node type of `provider`'s catalog, as a resource URI the API accepts."""
    _, regions, node_types = CATALOG[provider]
    names = regions if kind == "region" else node_types
    return rf"^{_ORIGIN}/api/v1/{kind}/{provider}/(?:{_names(names)})/?$"


def text_pattern(*, forbidden: str = r"\x00", blank: bool = False) -> str:
    """Text with none of the `forbidden` characters; the whitespace around it is trimmed, and unless `blank` what is
    left may not be empty. Fields also state a maxLength, which the server checks before the pattern."""
    core = rf"[^{WHITESPACE}{forbidden}](?:[^{forbidden}]*[^{WHITESPACE}{forbidden}])?[{WHITESPACE}]*"
    return rf"^[{WHITESPACE}]*(?:{core})?$" if blank else rf"^[{WHITESPACE}]*{core}$"


def _same_length_range(low: str, high: str) -> list[str]:
    """Regexes matching every decimal string of this length from `low` to `high`."""
    if low == high:
        return [low]
    if low[0] == high[0]:
        return [low[0] + tail for tail in _same_length_range(low[1:], high[1:])]
    rest = len(low) - 1
    first, last = int(low[0]), int(high[0])
    head, end = [], []
    if low[1:] != "0" * rest:
        head = [low[0] + tail for tail in _same_length_range(low[1:], "9" * rest)]
        first += 1
    if high[1:] != "9" * rest:
        end = [high[0] + tail for tail in _same_length_range("0" * rest, high[1:])]
        last -= 1
    middle = []
    if first <= last:
        digit = str(first) if first == last else f"[{first}-{last}]"
        middle = [digit + ("[0-9]" * rest if rest < 2 else f"[0-9]{{{rest}}}")]
    return head + middle + end


def decimal_range_pattern(low: int, high: int) -> str:
    """The decimal numbers from `low` to `high` (both >= 0) as text without leading zeros, e.g. `"60"`."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        stop = min(high, 10**digits - 1)
        if start <= stop:
            parts += _same_length_range(str(start), str(stop))
    return rf"^(?:{'|'.join(parts)})$"


def integer_schema(low: int, high: int) -> dict:
    """An integer from `low` to `high`, or the same number as decimal text (Tutum's CLI sends `--disk` as text)."""
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": decimal_range_pattern(low, high)},
        ]
    }


# --- dates in filters ---------------------------------------------------------------------------------------------

_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001 to 9999
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_ISO_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_ISO_DATE = rf"(?:{_YEAR}-{_ISO_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_HOUR, _MINUTE = r"(?:[01][0-9]|2[0-3])", r"[0-5][0-9]"
_ISO_ZONE = rf"(?:[Zz]|[+-]{_HOUR}(?::?{_MINUTE})?)"
_ISO_DATETIME = rf"{_ISO_DATE}[Tt ]{_HOUR}:{_MINUTE}(?::{_MINUTE}(?:\.[0-9]{{1,9}})?)?{_ISO_ZONE}?"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RFC_DAY_MONTH = (
    rf"(?:(?:0?[1-9]|1[0-9]|2[0-8]) (?:{'|'.join(_MONTHS)})"
    rf"|(?:29|30) (?:{'|'.join(month for month in _MONTHS if month != 'Feb')})"
    r"|31 (?:Jan|Mar|May|Jul|Aug|Oct|Dec))"
)
_RFC2822_INPUT = (
    rf"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(?:{_RFC_DAY_MONTH} {_YEAR}|29 Feb {_LEAP_YEAR}) "
    rf"{_HOUR}:{_MINUTE}(?::{_MINUTE})? (?:[+-]{_HOUR}{_MINUTE}|GMT|UTC|UT)"
)
#: Every date a date filter takes; what matches is always a real day and time.
DATE_INPUT_PATTERN = rf"^(?:{_ISO_DATE}|{_ISO_DATETIME}|{_RFC2822_INPUT})$"
MONTH_NUMBERS = {name: number for number, name in enumerate(_MONTHS, start=1)}
DATE_INPUT_DESCRIPTION = (
    "A date in RFC 2822, as the API writes them (`Tue, 16 Sep 2014 17:01:15 +0000`; the weekday is optional and "
    "not checked, seconds are optional, the zone is `+HHMM`, `-HHMM`, `GMT`, `UT` or `UTC`), or in ISO 8601: "
    "`2014-09-16`, `2014-09-16T17:01:15Z` (`T` or a space, seconds and up to 9 decimals optional, the zone `Z`, "
    "`+HH`, `+HHMM` or `+HH:MM`; none means UTC). Years 0001 to 9999; the day must exist. A `__lte` date given "
    "to the second includes that whole second."
)
