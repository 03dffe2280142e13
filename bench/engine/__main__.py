"""`python -m bench.engine`: the engine benchmarks (`--help` for the options)."""

import sys

from bench.engine import main

sys.exit(main())
