"""Tutum's dates: RFC 2822 in UTC (`Tue, 16 Sep 2014 17:01:15 +0000`) out, RFC 2822 or ISO 8601 in."""

import datetime
from email.utils import format_datetime, parsedate_to_datetime

from django.utils.dateparse import parse_date, parse_datetime


def format_rfc2822(value: datetime.datetime | None) -> str | None:
    """The RFC 2822 form of an aware datetime in UTC, or None for an unset date."""
    if value is None:
        return None
    return format_datetime(value.astimezone(datetime.UTC).replace(microsecond=0))


def parse_any(value: str) -> datetime.datetime:
    """A datetime from RFC 2822, ISO 8601 or a bare ISO date (midnight UTC); naive values are taken as UTC."""
    value = value.strip()
    parsed = None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        try:
            day = parse_date(value)
        except ValueError:
            day = None
        if day is not None:
            parsed = datetime.datetime.combine(day, datetime.time())
    if parsed is None:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None:
        raise ValueError(f"{value!r} is not a date; use RFC 2822 ('Tue, 16 Sep 2014 17:01:15 +0000') or ISO 8601")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return parsed.astimezone(datetime.UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is outside the range of dates (years 1 to 9999 in UTC)") from None
