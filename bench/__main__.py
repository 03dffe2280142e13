"""Run every benchmark in sequence, each in its own process with its own database: `python -m bench`.

    python -m bench [--only api,engine] [--output FILE]

Each benchmark prints its figures and its ratios; this runner only sequences them, mirrors their output to
FILE if asked, and exits non-zero if one of them crashed (a missed target is reported, not a failure).
"""

import argparse
import signal
import subprocess
import sys
import time

from bench.support import ROOT

BENCHMARKS = {
    "api": ["bench.api"],
    "engine": ["bench.engine"],
    "fleet": ["bench.engine", "--fleet"],
    "stream": ["bench.stream"],
    "broker": ["bench.broker"],
    "soak": ["bench.soak", "--minutes", "5"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="benchmarks to run, comma-separated")
    parser.add_argument("--output", help="also write everything printed to this file")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    output = open(args.output, "w") if args.output else None  # noqa: SIM115 - kept open for the whole run

    def emit(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        if output:
            output.write(text)
            output.flush()

    # A SIGTERM to the runner reaches the benchmark running now, which then drops its database and stops its servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    failed = []
    process = None
    try:
        for name in names:
            emit(f"\n===== python -m {BENCHMARKS[name][0]} =====\n")
            process = subprocess.Popen(
                [sys.executable, "-u", "-m", *BENCHMARKS[name]],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in process.stdout:
                emit(line)
            if process.wait() != 0:
                failed.append(f"{name} (exit {process.returncode})")
        emit(f"\n===== all benchmarks done in {time.monotonic() - started:.0f} s")
        emit(f"; crashed: {', '.join(failed)}\n" if failed else "\n")
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=60)
        if output:
            output.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
