"""`python -m customkeras.cli`: the `customkeras` command without the console script."""

import sys

from customkeras.cli import main

sys.exit(main())
