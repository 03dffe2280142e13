"""`tutum`: the command line (the official CLI 0.21.1's node cluster, node, action and event commands)."""

from __future__ import annotations

import logging
import os
import sys

import tutum
from tutum.api.exceptions import TutumApiError, TutumAuthError

from .commands import AUTH_ERROR_EXIT_CODE, COMMANDS, EXCEPTION_EXIT_CODE, CommandFailed, describe
from .output import Output
from .parsers import build_parser, patch_help_option

#: What a shell reports for a command ended by Ctrl-C.
INTERRUPTED_EXIT_CODE = 130

AUTH_HELP = (
    "Not Authorized: set TUTUM_USER and TUTUM_APIKEY (the banner of `make run` prints them), or TUTUM_AUTH, "
    "or [auth] user/apikey in ~/.tutum"
)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 done, 2 bad usage or credentials, 3 failed)."""
    parser = build_parser()
    args = parser.parse_args(patch_help_option(sys.argv[1:] if argv is None else argv))
    command = COMMANDS.get((args.cmd, getattr(args, "subcmd", None)))
    if command is None:
        parser.print_help()
        return 0
    if args.debug:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("python-tutum").setLevel(logging.DEBUG)
    tutum.user_agent = f"tutum-cli/{tutum.__version__}"
    out = Output(args.output)
    try:
        command(args, out)
    except CommandFailed as failed:
        return failed.code
    except TutumAuthError:
        out.error(AUTH_HELP)
        return AUTH_ERROR_EXIT_CODE
    except TutumApiError as error:
        out.error(describe(error))
        return EXCEPTION_EXIT_CODE
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT_CODE
    except BrokenPipeError:  # `tutum node list | head -1`: the reader is gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
