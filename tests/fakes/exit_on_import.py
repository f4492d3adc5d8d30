"""A plugin that calls sys.exit while being imported (tests only)."""

import sys

sys.exit(3)
