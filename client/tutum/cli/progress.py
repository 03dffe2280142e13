"""`--sync` and `--wait`: follow an action to its end from the event stream, with a progress bar per node.

The action's states go to stdout one a line ("In progress", "Success"), as the official CLI's `--sync` printed
them; the nodes' progress goes to stderr: live bars on a terminal, one line per state change otherwise. Where the
stream cannot be reached it polls every second (the official CLI polled every 4 s).
"""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tutum.api import stream as streams
from tutum.api.action import Action
from tutum.api.exceptions import TutumApiError, TutumTimeoutError
from tutum.api.node import Node
from tutum.api.nodecluster import NodeCluster
from tutum.api.types import FINAL_STATES

from .output import Output

#: Node states that end a node's part of an operation.
SETTLED_NODE_STATES = frozenset({"Deployed", "Unreachable", "Terminated"})
#: Re-read the action this often even when the stream is quiet.
RESYNC_SECONDS = 5.0
POLL_SECONDS = 1.0


class NodeProgress:
    """One bar per node (its short uuid, its state, done once settled)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.states: dict[str, str] = {}
        console = Console(file=sys.stderr)
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]\u2714[/green]"),
            TextColumn("node {task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            redirect_stdout=False,  # stdout stays the command's own (a script may capture it)
            redirect_stderr=False,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> NodeProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def status(self, text: str) -> None:
        """An action state: on stdout, or above the bars when both are the same terminal."""
        if self.out.json:
            self.out.error(text)
        elif self.live and sys.stdout.isatty():
            self.progress.console.print(text, highlight=False)
        else:
            self.out.line(text)

    def update(self, node_uuid: str | None, state: str | None) -> None:
        if not node_uuid or state is None:
            return
        state = str(state)
        if self.states.get(node_uuid) == state:
            return
        self.states[node_uuid] = state
        done = 1 if state in SETTLED_NODE_STATES else 0
        if not self.live:
            self.out.error(f"node {node_uuid[:8]}: {state}")
            return
        if node_uuid not in self.tasks:
            self.tasks[node_uuid] = self.progress.add_task(node_uuid[:8], total=1, completed=0, state=state)
        self.progress.update(self.tasks[node_uuid], completed=done, state=state)


def _nodes_of(obj) -> list[Node]:
    if isinstance(obj, NodeCluster):
        return [node for node in Node.list(node_cluster=obj.resource_uri) if node.state != "Terminated"]
    if isinstance(obj, Node):
        return [Node.fetch(obj.uuid)]
    return []


def _settle(obj, progress: NodeProgress) -> None:
    """The nodes' last states once the action ended (its own event may come before theirs)."""
    if isinstance(obj, NodeCluster):
        for node in Node.list(node_cluster=obj.resource_uri):
            if node.uuid in progress.states or node.state != "Terminated":
                progress.update(node.uuid, node.state)
    elif isinstance(obj, Node):
        node = Node.fetch(obj.uuid)
        progress.update(node.uuid, node.state)


def _concerns_nodes_of(event: streams.Event, obj) -> bool:
    if event.get("type") != "node":
        return False
    return event.concerns(obj.resource_uri)


def follow_action(obj, out: Output, *, timeout: float | None = None) -> Action | None:
    """Follow the action of `obj`'s last write until it ends; prints its states; returns it (None if no action)."""
    uri = getattr(obj, "tutum_action_uri", "")
    if not uri:
        return None
    deadline = None if timeout is None else time.monotonic() + timeout
    stream = streams.open_event_stream()  # before the first read, so no change falls between the two
    if stream is None:
        out.error(f"tutum: the event stream ({streams.stream_endpoint_url('events')}) is unreachable; polling")
    action = Action.fetch(uri)
    printed = None
    final = FINAL_STATES["action"]
    try:
        with NodeProgress(out) as progress:
            for node in _nodes_of(obj):
                progress.update(node.uuid, node.state)
            last_read = time.monotonic()
            while True:
                if str(action.state) != printed:
                    printed = str(action.state)
                    progress.status(printed)
                if action.state in final:
                    _settle(obj, progress)
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TutumTimeoutError(f"action {action.uuid} is still {action.state} after {timeout:g} s")
                window = min(RESYNC_SECONDS, remaining) if remaining is not None else RESYNC_SECONDS
                if stream is None:
                    time.sleep(min(POLL_SECONDS, window))
                    action.refresh(force=True)
                    for node in _nodes_of(obj):
                        progress.update(node.uuid, node.state)
                    continue
                try:
                    event = stream.next(timeout=max(0.0, last_read + window - time.monotonic()))
                except streams.StreamClosed:
                    try:
                        stream.reconnect()
                    except streams.StreamUnavailable:
                        stream = None
                    event = None
                if event is None or event.get("resource_uri") == action.resource_uri:
                    action.refresh(force=True)
                    last_read = time.monotonic()
                elif _concerns_nodes_of(event, obj):
                    progress.update(
                        event.get("uuid") or event["resource_uri"].rstrip("/").rsplit("/", 1)[-1], event.get("state")
                    )
    finally:
        if stream is not None:
            stream.close()
    with contextlib.suppress(TutumApiError):  # what it became, for `-o json` (a read that fails changes nothing)
        obj.refresh(force=True)
    return action
