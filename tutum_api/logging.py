"""Structured logs: JSON lines carrying the node cluster, node and action an engine line is about."""

import contextvars
import logging
from contextlib import contextmanager

_FIELDS = ("node_cluster_uuid", "node_uuid", "action_uuid")
_context: dict[str, contextvars.ContextVar] = {name: contextvars.ContextVar(name, default=None) for name in _FIELDS}
_in_block = contextvars.ContextVar("in_log_context", default=False)


@contextmanager
def log_context(**values):
    """Within the block, every log record carries these ids (None values are left out).

    Ids bound later in the block with `bind_log_context` are dropped at its end too, so a worker thread never
    carries one task's ids into the next.
    """
    tokens = [(_in_block, _in_block.set(True))]
    for name, variable in _context.items():
        value = values.get(name)
        tokens.append((variable, variable.set(str(value) if value is not None else variable.get())))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def bind_log_context(**values) -> None:
    """Add ids learned inside a `log_context` block (a node's cluster, once the node is loaded) to its records.

    Outside a block it does nothing: nothing would take the ids away again.
    """
    if not _in_block.get():
        return
    for name, value in values.items():
        if value is not None:
            _context[name].set(str(value))


class ContextFilter(logging.Filter):
    """Copies the current ids onto each record, where the JSON formatter picks them up."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _context.items():
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True
