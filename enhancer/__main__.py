"""`python -m enhancer ...`: see `enhancer.cli`."""

import sys

from enhancer.cli import main

sys.exit(main())
