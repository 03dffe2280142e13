"""Tutum's dates: RFC 2822 in UTC (`Tue, 16 Sep 2014 17:01:15 +0000`) out, RFC 2822 or ISO 8601 in."""

import datetime
import re
from email.utils import format_datetime

from .grammar import DATE_INPUT_PATTERN, MONTH_NUMBERS, fullmatch


def format_rfc2822(value: datetime.datetime | None) -> str | None:
    """The RFC 2822 form of an aware datetime in UTC, or None for an unset date."""
    if value is None:
        return None
    return format_datetime(value.astimezone(datetime.UTC).replace(microsecond=0))


_ISO_PARTS = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<zone>.*))?"
)
_RFC2822_PARTS = re.compile(
    r"(?:[A-Za-z]{3}, )?(?P<day>[0-9]{1,2}) (?P<month>[A-Za-z]{3}) (?P<year>[0-9]{4}) "
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))? (?P<zone>.+)"
)
_ZONE_PARTS = re.compile(r"(?P<sign>[+-])(?P<hours>[0-9]{2}):?(?P<minutes>[0-9]{2})?")


def parse_date_input(value: str) -> datetime.datetime:
    """The UTC datetime of a date `DATE_INPUT_PATTERN` admits; ValueError for any other text.

    The pattern admits only real days, so building the datetime cannot fail; a time zone that moves a date past
    year 1 or 9999 in UTC gives the first or last representable moment, which filters the same.
    """
    if not fullmatch(DATE_INPUT_PATTERN, value):
        raise ValueError(value)
    parts = _ISO_PARTS.fullmatch(value) or _RFC2822_PARTS.fullmatch(value)
    fields = parts.groupdict()
    month = int(fields["month"]) if fields["month"].isdigit() else MONTH_NUMBERS[fields["month"]]
    fraction = (fields.get("fraction") or "").ljust(6, "0")[:6]
    local = datetime.datetime(
        int(fields["year"]),
        month,
        int(fields["day"]),
        int(fields["hour"] or 0),
        int(fields["minute"] or 0),
        int(fields["second"] or 0),
        int(fraction),
    )
    zone = _ZONE_PARTS.fullmatch(fields["zone"] or "")
    offset = datetime.timedelta(hours=int(zone["hours"]), minutes=int(zone["minutes"] or 0)) if zone else None
    if zone and zone["sign"] == "-":
        offset = -offset
    try:
        moment = local - offset if offset else local
    except OverflowError:
        moment = datetime.datetime.min if offset > datetime.timedelta(0) else datetime.datetime.max
    return moment.replace(tzinfo=datetime.UTC)
