"""The command line: the official CLI's (`tutum` 0.21.1) node cluster, node, action and event commands, with
their arguments, plus `--output json|table`, `--timeout` and `nodecluster scale --wait`."""

from __future__ import annotations

import argparse

import tutum

SYNC_HELP = "block the command until the async operation has finished (live progress per node)"


def _output_options() -> argparse.ArgumentParser:
    """`-o/--output`, accepted after any command as well as before it."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-o",
        "--output",
        choices=["table", "json"],
        default=argparse.SUPPRESS,
        help="table (default; the official CLI's layout) or json",
    )
    return parent


def _sync(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sync", help=SYNC_HELP, action="store_true")
    parser.add_argument("--timeout", type=float, help="with --sync/--wait: give up after this many seconds (exit 3)")


def build_parser() -> argparse.ArgumentParser:
    common = _output_options()
    parser = argparse.ArgumentParser(description="Tutum's CLI", prog="tutum")
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {tutum.__version__}")
    parser.add_argument("--debug", action="store_true", help="log every request to stderr")
    parser.add_argument("-o", "--output", choices=["table", "json"], help="table (default; inspect: json) or json")
    commands = parser.add_subparsers(title="Tutum's CLI commands", dest="cmd")
    _action_parser(commands, common)
    commands.add_parser(
        "event", help="Get real time tutum events", description="Get real time tutum events", parents=[common]
    )
    _node_parser(commands, common)
    _nodecluster_parser(commands, common)
    return parser


def _action_parser(commands, common) -> None:
    parser = commands.add_parser("action", help="Action-related operations", description="Action-related operations")
    sub = parser.add_subparsers(title="tutum action commands", dest="subcmd")

    inspect = sub.add_parser(
        "inspect", help="Get all details from an action", parents=[common], description="Get all details from an action"
    )
    inspect.add_argument("identifier", help="action's UUID (either long or short)", nargs="+")

    listing = sub.add_parser("list", help="List actions", description="List actions", parents=[common])
    listing.add_argument("-q", "--quiet", help="print only action uuid", action="store_true")
    listing.add_argument("-l", "--last", help="Output the last number of actions (default:25)", type=int)

    logs = sub.add_parser(
        "logs", help="Get logs from an action", description="Get logs from an action", parents=[common]
    )
    logs.add_argument("identifier", help="action's UUID (either long or short)", nargs="+")
    logs.add_argument("-f", "--follow", help="follow log output", action="store_true")
    logs.add_argument(
        "-t", "--tail", type=int, help="Output the specified number of lines at the end of logs (defaults: 300)"
    )

    cancel = sub.add_parser(
        "cancel",
        help="Cancel an action in Pending or In progress state",
        parents=[common],
        description="Cancels an action in Pending or In progress state",
    )
    cancel.add_argument("identifier", help="action's UUID (either long or short)", nargs="+")

    retry = sub.add_parser(
        "retry",
        help="Retries an action in Success, Failed or Canceled state",
        parents=[common],
        description="Retries an action in Success, Failed or Canceled state",
    )
    retry.add_argument("identifier", help="action's UUID (either long or short)", nargs="+")


def _node_parser(commands, common) -> None:
    parser = commands.add_parser("node", help="Node-related operations", description="Node-related operations")
    sub = parser.add_subparsers(title="tutum node commands", dest="subcmd")

    inspect = sub.add_parser("inspect", help="Inspect a node", description="Inspect a node", parents=[common])
    inspect.add_argument("identifier", help="node's UUID (either long or short)", nargs="+")

    listing = sub.add_parser("list", help="List nodes", description="List nodes", parents=[common])
    listing.add_argument("-q", "--quiet", help="print only node uuid", action="store_true")

    rm = sub.add_parser("rm", help="Remove a node", description="Remove a node", parents=[common])
    rm.add_argument("identifier", help="node's UUID (either long or short)", nargs="+")
    _sync(rm)

    upgrade = sub.add_parser(
        "upgrade",
        help="Upgrade docker daemon on the node",
        parents=[common],
        description="Upgrade docker daemon to the latest version on the node",
    )
    upgrade.add_argument("identifier", help="node's UUID (either long or short)", nargs="+")
    _sync(upgrade)

    healthcheck = sub.add_parser(
        "healthcheck",
        parents=[common],
        help="Test connectivity between Tutum and the node. Updates the node status to Deployed if the check was "
        "successful, or to Unreachable otherwise",
    )
    healthcheck.add_argument("identifier", help="node's UUID (either long or short)", nargs="+")


def _nodecluster_parser(commands, common) -> None:
    parser = commands.add_parser(
        "nodecluster", help="NodeCluster-related operations", description="NodeCluster-related operations"
    )
    sub = parser.add_subparsers(title="tutum node commands", dest="subcmd")

    create = sub.add_parser("create", help="Create a nodecluster", description="Create a nodecluster", parents=[common])
    create.add_argument(
        "-t", "--target-num-nodes", type=int, help="the target number of nodes to run for this cluster (default: 1)"
    )
    create.add_argument("name", help="name of the node cluster to create")
    create.add_argument("provider", help="name of the provider")
    create.add_argument("region", help="name of the region")
    create.add_argument("nodetype", help="name of the node type")
    _sync(create)
    create.add_argument(
        "--disk",
        type=int,
        help="Disk size of node in GB(Default:60). The available value varies depending on the providers",
    )
    create.add_argument("--tag", help="set the tag of the node cluster", action="append")
    create.add_argument("--aws-vpc-id", help="aws provider option: vpc id")
    create.add_argument("--aws-vpc-subnet", help="aws provider option: vpc subnet", action="append")
    create.add_argument("--aws-vpc-security-group", help="aws provider option: vpc security group", action="append")
    create.add_argument(
        "--aws-iam-instance-profile-name", help="aws provider option: instance profile name for the iam"
    )

    inspect = sub.add_parser(
        "inspect", help="Inspect a nodecluster", description="Inspect a nodecluster", parents=[common]
    )
    inspect.add_argument("identifier", help="node cluster's UUID (either long or short) or name", nargs="+")

    listing = sub.add_parser("list", help="List node clusters", description="List node clusters", parents=[common])
    listing.add_argument("-q", "--quiet", help="print only node cluster uuid", action="store_true")

    rm = sub.add_parser("rm", help="Remove node clusters", description="Remove node clusters", parents=[common])
    rm.add_argument("identifier", help="node cluster's UUID (either long or short) or name", nargs="+")
    _sync(rm)

    scale = sub.add_parser(
        "scale", help="Scale a running node cluster", description="Scale a running node cluster", parents=[common]
    )
    scale.add_argument("identifier", help="node cluster's UUID (either long or short) or name", nargs="+")
    scale.add_argument(
        "target_num_nodes",
        metavar="target-num-nodes",
        type=int,
        help="target number of nodes to scale this node cluster to",
    )
    _sync(scale)
    scale.add_argument(
        "--wait",
        action="store_true",
        help="wait until the cluster is Deployed with that many nodes (exit 3 if it cannot be)",
    )

    provider = sub.add_parser(
        "provider",
        help="Show all available infrastructure providers",
        parents=[common],
        description="Show all available infrastructure providers",
    )
    provider.add_argument("-q", "--quiet", help="print only provider name", action="store_true")

    region = sub.add_parser("region", help="Show all available regions", parents=[common])
    region.add_argument("-p", "--provider", help="filtered by provider name (e.g. digitalocean)")

    nodetype = sub.add_parser("nodetype", help="Show all available types", parents=[common])
    nodetype.add_argument("-p", "--provider", help="filtered by provider name (e.g. digitalocean)")
    nodetype.add_argument("-r", "--region", help="filtered by region name (e.g. ams1)")

    az = sub.add_parser("az", help="Show all available availability zones", parents=[common])
    az.add_argument("-q", "--quiet", help="print only availability zone name", action="store_true")

    upgrade = sub.add_parser(
        "upgrade",
        help="Upgrade docker daemon on all the nodes in the node cluster",
        parents=[common],
        description="Upgrade docker daemon on all the nodes in the node cluster",
    )
    upgrade.add_argument("identifier", help="node cluster's UUID (either long or short) or name", nargs="+")
    _sync(upgrade)


#: Commands that, given no argument, show their help (as the official CLI's `patch_help_option` does).
HELP_WHEN_BARE = {
    "action": {"inspect", "logs", "cancel", "retry"},
    "node": {"inspect", "rm", "upgrade", "healthcheck"},
    "nodecluster": {"create", "inspect", "rm", "scale", "upgrade"},
}


def patch_help_option(argv: list[str]) -> list[str]:
    """`tutum`, `tutum node` and `tutum node inspect` alone print their help (exit 0), as in the official CLI."""
    args = list(argv)
    debug = bool(args) and args[0] == "--debug"
    if debug:
        args.pop(0)
    if (
        not args
        or (len(args) == 1 and args[0] in HELP_WHEN_BARE)
        or (len(args) == 2 and args[1] in HELP_WHEN_BARE.get(args[0], ()))
    ):
        args.append("-h")
    if debug:
        args.insert(0, "--debug")
    return args
