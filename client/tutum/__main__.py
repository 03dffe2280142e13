"""`python -m tutum ...` is the `tutum` command."""

import sys

from tutum.cli import main

sys.exit(main())
