"""The CLI's commands, one function each, printing what the official CLI printed (or JSON with `-o json`).

Commands that take several identifiers go on after one fails and exit 3 at the end, as the official ones do.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import tutum
from tutum.api.exceptions import TutumApiError, TutumAuthError, TutumWaitError

from .output import Output, humanize, with_symbol
from .progress import follow_action

#: The official CLI's exit codes: 2 bad usage (argparse) and credentials, 3 anything else that failed.
AUTH_ERROR_EXIT_CODE = 2
EXCEPTION_EXIT_CODE = 3


class CommandFailed(Exception):
    """Ends the command with `code` once everything it could do was done."""

    def __init__(self, code: int = EXCEPTION_EXIT_CODE) -> None:
        super().__init__(code)
        self.code = code


def describe(error: Exception) -> str:
    """An error as one line: the server's own message where it gave one (e.g. a 409 naming the state)."""
    if isinstance(error, TutumApiError) and error.error and error.status_code:
        return f"{error.error} (HTTP {error.status_code} {error.method} {error.url})"
    return str(error)


def for_each(identifiers: list[str], out: Output, work: Callable[[str], Any]) -> None:
    """Run `work` for each identifier; report each failure on stderr; exit 3 at the end if any failed."""
    failed = False
    for identifier in identifiers:
        try:
            work(identifier)
        except TutumAuthError:
            raise
        except TutumApiError as error:
            out.error(describe(error))
            failed = True
    if failed:
        raise CommandFailed


def _report_write(obj, out: Output, written: bool) -> None:
    if out.json:
        out.dump(obj)
    elif written:
        out.line(obj.uuid)


def _sync_then_report(obj, out: Output, args, written: bool) -> None:
    if getattr(args, "sync", False):
        follow_action(obj, out, timeout=args.timeout)
    _report_write(obj, out, written)


# --- event --------------------------------------------------------------------------------------------------------


def event(args, out: Output) -> None:
    """Every event, as it happens, until Ctrl-C: the dict as Python prints it (one JSON object with -o json)."""
    events = tutum.TutumEvents()
    if out.json:
        events.on_message(lambda message: out.line(json.dumps(message)))
    else:
        events.on_message(lambda message: out.line(str(dict(message))))
    events.on_error(lambda error: out.error(f"tutum: {error}") if not isinstance(error, TutumAuthError) else None)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it ends: exit 0, as the official CLI
        events.run_forever()


# --- action -------------------------------------------------------------------------------------------------------


def action_inspect(args, out: Output) -> None:
    def inspect(identifier: str) -> None:
        action = tutum.Utils.fetch_remote_action(identifier)
        _inspect_output(action, out)

    for_each(args.identifier, out, inspect)


def _inspect_output(obj, out: Output) -> None:
    if out.mode == "table":  # only when asked for: `inspect` prints JSON by default, as the official CLI
        out.table(
            [
                [key, json.dumps(value) if isinstance(value, dict | list) else value]
                for key, value in obj.to_dict().items()
            ],
            ["FIELD", "VALUE"],
        )
    else:
        out.dump(obj)


def action_list(args, out: Output) -> None:
    actions = tutum.Action.list(args.last or 25)
    if out.json:
        out.dump(actions)
        return
    if args.quiet:
        for action in actions:
            out.line(action.uuid)
        return
    rows = []
    for action in actions:
        terms = (action.object or "").strip("/").split("/", 3)
        rows.append(
            [
                action.uuid[:8],
                action.action,
                humanize(action.start_date),
                humanize(action.end_date),
                terms[3] if len(terms) == 4 else "",
                action.ip,
                action.location,
            ]
        )
    out.table(rows, ["UUID", "ACTION", "START", "END", "TARGET", "IP", "LOCATION"])


def action_logs(args, out: Output) -> None:
    def handler(message: str) -> None:
        try:
            value = json.loads(message)
        except ValueError:
            return
        if value.get("type") == "log":
            out.line(json.dumps(value) if out.json else value.get("log", ""))

    def logs(identifier: str) -> None:
        action = tutum.Utils.fetch_remote_action(identifier)
        with contextlib.suppress(KeyboardInterrupt):
            action.logs(args.tail, args.follow, handler)

    for_each(args.identifier, out, logs)


def action_cancel(args, out: Output) -> None:
    def cancel(identifier: str) -> None:
        action = tutum.Utils.fetch_remote_action(identifier)
        _report_write(action, out, action.cancel())

    for_each(args.identifier, out, cancel)


def action_retry(args, out: Output) -> None:
    def retry(identifier: str) -> None:
        action = tutum.Utils.fetch_remote_action(identifier)
        _report_write(action, out, action.retry())

    for_each(args.identifier, out, retry)


# --- node ---------------------------------------------------------------------------------------------------------


def node_list(args, out: Output) -> None:
    nodes = tutum.Node.list()
    if out.json:
        out.dump(nodes)
        return
    if args.quiet:
        for node in nodes:
            out.line(node.uuid)
        return
    cluster_names: dict[str, str] = {}
    rows = []
    for node in nodes:
        cluster = node.node_cluster or ""
        if cluster and cluster not in cluster_names:
            try:
                cluster_names[cluster] = tutum.NodeCluster.fetch(cluster).name
            except TutumAuthError:
                raise
            except TutumApiError:
                cluster_names[cluster] = cluster
        rows.append(
            [
                node.uuid[:8],
                node.external_fqdn,
                humanize(node.last_seen),
                with_symbol(node.state),
                cluster_names.get(cluster, cluster),
                node.docker_version,
            ]
        )
    out.table(rows, ["UUID", "FQDN", "LASTSEEN", "STATUS", "CLUSTER", "DOCKER_VER"], state_column=3)


def node_inspect(args, out: Output) -> None:
    for_each(args.identifier, out, lambda identifier: _inspect_output(tutum.Utils.fetch_remote_node(identifier), out))


def node_rm(args, out: Output) -> None:
    def rm(identifier: str) -> None:
        node = tutum.Utils.fetch_remote_node(identifier)
        _sync_then_report(node, out, args, node.delete())

    for_each(args.identifier, out, rm)


def node_upgrade(args, out: Output) -> None:
    def upgrade(identifier: str) -> None:
        node = tutum.Utils.fetch_remote_node(identifier)
        _sync_then_report(node, out, args, node.upgrade_docker())

    for_each(args.identifier, out, upgrade)


def node_healthcheck(args, out: Output) -> None:
    def healthcheck(identifier: str) -> None:
        node = tutum.Utils.fetch_remote_node(identifier)
        _report_write(node, out, node.health_check())

    for_each(args.identifier, out, healthcheck)


# --- nodecluster --------------------------------------------------------------------------------------------------


def _catalog_label(cls, uri: str, cache: dict[str, str]) -> str:
    if uri not in cache:
        try:
            cache[uri] = cls.fetch(uri).label
        except TutumAuthError:
            raise
        except TutumApiError:
            cache[uri] = uri
    return cache[uri]


def nodecluster_list(args, out: Output) -> None:
    clusters = tutum.NodeCluster.list()
    if out.json:
        out.dump(clusters)
        return
    if args.quiet:
        for cluster in clusters:
            out.line(cluster.uuid)
        return
    labels: dict[str, str] = {}
    rows = [
        [
            cluster.name,
            cluster.uuid[:8],
            _catalog_label(tutum.Region, cluster.region, labels),
            _catalog_label(tutum.NodeType, cluster.node_type, labels),
            humanize(cluster.deployed_datetime),
            str(cluster.state),
            cluster.current_num_nodes,
            cluster.target_num_nodes,
        ]
        for cluster in clusters
    ]
    out.table(
        rows,
        ["NAME", "UUID", "REGION", "TYPE", "DEPLOYED", "STATUS", "CURRENT#NODES", "TARGET#NODES"],
        state_column=5,
    )


def nodecluster_inspect(args, out: Output) -> None:
    for_each(
        args.identifier, out, lambda identifier: _inspect_output(tutum.Utils.fetch_remote_nodecluster(identifier), out)
    )


def nodecluster_show_providers(args, out: Output) -> None:
    providers = tutum.Provider.list()
    if out.json:
        out.dump(providers)
    elif args.quiet:
        for provider in providers:
            out.line(provider.name)
    else:
        out.table([[provider.name, provider.label] for provider in providers], ["NAME", "LABEL"])


def _provider_of(resource_uri: str) -> str:
    return resource_uri.strip("/").split("/")[3]


def nodecluster_show_regions(args, out: Output) -> None:
    regions = [
        region
        for region in tutum.Region.list()
        if not args.provider or _provider_of(region.resource_uri) == args.provider
    ]
    if out.json:
        out.dump(regions)
        return
    out.table(
        [[region.name, region.label, _provider_of(region.resource_uri)] for region in regions],
        ["NAME", "LABEL", "PROVIDER"],
    )


def nodecluster_show_types(args, out: Output) -> None:
    found = []
    for node_type in tutum.NodeType.list():
        regions = [uri.strip("/").split("/")[-1] for uri in node_type.regions]
        if args.provider and _provider_of(node_type.resource_uri) != args.provider:
            continue
        if args.region and args.region not in regions:
            continue
        found.append((node_type, regions))
    if out.json:
        out.dump([node_type for node_type, _ in found])
        return
    out.table(
        [
            [node_type.name, node_type.label, _provider_of(node_type.resource_uri), ", ".join(regions)]
            for node_type, regions in found
        ],
        ["NAME", "LABEL", "PROVIDER", "REGIONS"],
    )


def nodecluster_az(args, out: Output) -> None:
    zones = tutum.AZ.list()
    if out.json:
        out.dump(zones)
    elif args.quiet:
        for zone in zones:
            out.line(zone.name)
    else:
        out.table(
            [[zone.name, "Yes" if zone.available else "No", zone.resource_uri] for zone in zones],
            ["NAME", "AVAILABLE", "RESOURCE URI"],
        )


def nodecluster_create(args, out: Output) -> None:
    provider_options: dict[str, dict] = {}
    vpc = {
        key: value
        for key, value in (
            ("id", args.aws_vpc_id),
            ("subnets", args.aws_vpc_subnet),
            ("security_groups", args.aws_vpc_security_group),
        )
        if value
    }
    if vpc:
        provider_options["vpc"] = vpc
    if args.aws_iam_instance_profile_name:
        provider_options["iam"] = {"instance_profile_name": args.aws_iam_instance_profile_name}
    fields: dict[str, Any] = {
        "name": args.name,
        "region": f"/api/v1/region/{args.provider}/{args.region}/",
        "node_type": f"/api/v1/nodetype/{args.provider}/{args.nodetype}/",
    }
    if args.target_num_nodes is not None:
        fields["target_num_nodes"] = args.target_num_nodes
    if args.disk:
        fields["disk"] = args.disk
    if provider_options:
        fields["provider_options"] = provider_options
    if args.tag:
        fields["tags"] = [{"name": tag} for tag in args.tag]
    try:
        cluster = tutum.NodeCluster.create(**fields)
        cluster.save()
        _sync_then_report(cluster, out, args, cluster.deploy())
    except TutumAuthError:
        raise
    except TutumApiError as error:
        out.error(describe(error))
        raise CommandFailed from error


def nodecluster_rm(args, out: Output) -> None:
    def rm(identifier: str) -> None:
        cluster = tutum.Utils.fetch_remote_nodecluster(identifier)
        _sync_then_report(cluster, out, args, cluster.delete())

    for_each(args.identifier, out, rm)


def nodecluster_scale(args, out: Output) -> None:
    def scale(identifier: str) -> None:
        cluster = tutum.Utils.fetch_remote_nodecluster(identifier)
        cluster.target_num_nodes = args.target_num_nodes
        written = cluster.save()
        if args.wait:
            _wait_for_size(cluster, args, out)
        elif args.sync:
            follow_action(cluster, out, timeout=args.timeout)
        _report_write(cluster, out, written)

    for_each(args.identifier, out, scale)


def _wait_for_size(cluster, args, out: Output) -> None:
    """`scale --wait`: follow the scale, then make sure the cluster is Deployed with the target number of nodes."""
    action = follow_action(cluster, out, timeout=args.timeout)
    if action is not None and action.state == "Failed":
        raise TutumWaitError(f"the scale of node cluster {cluster.name} failed (action {action.uuid})")
    target = args.target_num_nodes
    cluster.wait_until(
        lambda obj: obj.state == "Deployed" and obj.current_num_nodes == target,
        timeout=args.timeout or 60,
        describe=f"Deployed with {target} node(s)",
        hopeless=lambda obj: obj.state in ("Terminating", "Terminated"),
    )


def nodecluster_upgrade(args, out: Output) -> None:
    def upgrade(identifier: str) -> None:
        cluster = tutum.Utils.fetch_remote_nodecluster(identifier)
        _sync_then_report(cluster, out, args, cluster.upgrade_docker())

    for_each(args.identifier, out, upgrade)


COMMANDS: dict[tuple[str, str | None], Callable] = {
    ("event", None): event,
    ("action", "inspect"): action_inspect,
    ("action", "list"): action_list,
    ("action", "logs"): action_logs,
    ("action", "cancel"): action_cancel,
    ("action", "retry"): action_retry,
    ("node", "inspect"): node_inspect,
    ("node", "list"): node_list,
    ("node", "rm"): node_rm,
    ("node", "upgrade"): node_upgrade,
    ("node", "healthcheck"): node_healthcheck,
    ("nodecluster", "create"): nodecluster_create,
    ("nodecluster", "inspect"): nodecluster_inspect,
    ("nodecluster", "list"): nodecluster_list,
    ("nodecluster", "provider"): nodecluster_show_providers,
    ("nodecluster", "region"): nodecluster_show_regions,
    ("nodecluster", "nodetype"): nodecluster_show_types,
    ("nodecluster", "az"): nodecluster_az,
    ("nodecluster", "rm"): nodecluster_rm,
    ("nodecluster", "scale"): nodecluster_scale,
    ("nodecluster", "upgrade"): nodecluster_upgrade,
}
