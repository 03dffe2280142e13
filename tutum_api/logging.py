"""Structured logs: JSON lines carrying the node cluster, node and action an engine line is about."""

import contextvars
import logging
from contextlib import contextmanager

_FIELDS = ("node_cluster_uuid", "node_uuid", "action_uuid")
_context: dict[str, contextvars.ContextVar] = {name: contextvars.ContextVar(name, default=None) for name in _FIELDS}


@contextmanager
def log_context(**values):
    """Within the block, every log record carries these ids (None values are left out)."""
    tokens = [(_context[name], _context[name].set(str(value))) for name, value in values.items() if value is not None]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current ids onto each record, where the JSON formatter picks them up."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _context.items():
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True
