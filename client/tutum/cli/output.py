"""What the CLI prints: the official CLI's plain tables (or rich ones on a terminal), JSON, and relative dates."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tutum.api.base import Restful, wire_value

#: The official CLI's state symbols (`tutum node list` shows "▶ Deployed").
STATE_SYMBOLS = {
    "Deployed": "\u25b6",
    "Running": "\u25b6",
    "Partly running": "\u25b6",
    "Init": "\u25fc",
    "Stopped": "\u25fc",
    "Not running": "\u25fc",
    "Starting": "\u2699",
    "Stopping": "\u2699",
    "Scaling": "\u2699",
    "Terminating": "\u2699",
    "Deploying": "\u2699",
    "Redeploying": "\u2699",
    "Upgrading": "\u2699",
    "Start failed": "!",
    "Stopped with errors": "!",
    "Terminated": "\u2718",
    "Unreachable": "\u2753",
}
STATE_STYLES = {
    "Deployed": "green",
    "Success": "green",
    "Partly deployed": "yellow",
    "Unreachable": "yellow",
    "Failed": "red",
    "Terminated": "dim",
    "Empty cluster": "yellow",
}


def with_symbol(state: Any) -> str:
    state = "" if state is None else str(state)
    symbol = STATE_SYMBOLS.get(state)
    return f"{symbol} {state}" if symbol else state


def humanize(timestamp: Any, now: datetime | None = None) -> str:
    """`ago.human(delta, precision=1)` as the official CLI shows dates: "5 minutes ago"; "" for none."""
    if not timestamp:
        return ""
    when = getattr(timestamp, "datetime", None)
    if when is None:
        return str(timestamp)
    delta = (now or datetime.now(UTC)) - when
    tense = "{} ago" if delta.total_seconds() >= 0 else "in {}"
    delta = abs(delta)
    units = (
        ("year", delta.days // 365),
        ("day", delta.days % 365),
        ("hour", delta.seconds // 3600),
        ("minute", delta.seconds // 60 % 60),
        ("second", delta.seconds % 60),
        ("microsecond", delta.microseconds),
    )
    for unit, count in units:
        if count:
            return tense.format(f"{count} {unit}{'' if count == 1 else 's'}")
    return tense.format("")


def _is_number(value: Any) -> bool:
    """tabulate's test: a number, or text that reads as one (such a column is aligned to the right)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _numeric_columns(rows: list[list[Any]], count: int) -> list[bool]:
    return [
        any(row[i] not in ("", None) for row in rows)
        and all(_is_number(row[i]) for row in rows if row[i] not in ("", None))
        for i in range(count)
    ]


def plain_table(rows: list[list[Any]], headers: list[str]) -> str:
    """tabulate's "plain" format as the official CLI printed it (tabulate 0.7.2): a column is as wide as its widest
    cell and at least two wider than its header, columns two spaces apart, numbers to the right."""
    cells = [["" if value is None else str(value) for value in row] for row in rows]
    numeric = _numeric_columns(rows, len(headers))
    widths = [max([len(headers[i]) + 2, *(len(row[i]) for row in cells)]) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        parts = [value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i]) for i, value in enumerate(values)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


class Output:
    """Where and how the CLI prints: `table` (the official layout; rich styling on a terminal) or `json`.

    `mode` is None when the user chose nothing: tables for lists, JSON for `inspect`, as the official CLI.
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode
        self.rich = sys.stdout.isatty()

    @property
    def json(self) -> bool:
        return self.mode == "json"

    def line(self, text: str = "") -> None:
        print(text, file=sys.stdout, flush=True)

    def error(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def dump(self, value: Any) -> None:
        """JSON, indented as the official `inspect` prints it."""
        if isinstance(value, Restful):
            value = value.to_dict()
        elif isinstance(value, list):
            value = [item.to_dict() if isinstance(item, Restful) else wire_value(item) for item in value]
        self.line(json.dumps(wire_value(value), indent=2))

    def table(self, rows: list[list[Any]], headers: list[str], *, state_column: int | None = None) -> None:
        if not rows:
            rows = [[""] * len(headers)]
        if not self.rich:
            self.line(plain_table(rows, headers))
            return
        # Columns as wide as their widest cell, as the plain layout: a narrow terminal scrolls, nothing is cut.
        texts = [["" if value is None else str(value) for value in row] for row in rows]
        widths = [max([len(header), *(len(row[i]) for row in texts)]) for i, header in enumerate(headers)]
        table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
        numeric = _numeric_columns(rows, len(headers))
        for index, header in enumerate(headers):
            table.add_column(
                header, justify="right" if numeric[index] else "left", no_wrap=True, min_width=widths[index]
            )
        for row in texts:
            table.add_row(
                *(
                    Text(text, style=STATE_STYLES.get(text.split(" ", 1)[-1], "") if index == state_column else "")
                    for index, text in enumerate(row)
                )
            )
        console = Console(file=sys.stdout, highlight=False)
        console.width = max(console.width, sum(widths) + 2 * len(widths))
        console.print(table)
