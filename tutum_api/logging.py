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


class RoutineTasksFilter(logging.Filter):
    """Leaves out the lines Celery writes at INFO for each run of the housekeeping tasks beat runs every few seconds
    (`LOG_ROUTINE_TASKS`): beat's "Sending due task", the worker's "received" and "succeeded". On an idle `make run`
    they were a third of every line written, about one a second, burying the engine's own lines. Those tasks log
    what they did themselves when they did something, and their warnings and failures still show."""

    def __init__(self, tasks=()) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith("celery."):
            return True
        data = getattr(record, "data", None)  # the worker's lines: Celery passes the task's context as `data`
        if isinstance(data, dict):
            return data.get("name") not in self.tasks
        if record.name == "celery.beat" and isinstance(record.args, tuple) and len(record.args) == 2:
            return record.args[1] not in self.tasks  # "Scheduler: Sending due task %s (%s)": entry, task
        return True
