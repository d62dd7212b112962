"""``python -m subcell``."""

import sys

from subcell.cli import main

sys.exit(main())
