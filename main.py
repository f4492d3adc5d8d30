"""Launch the Studio desktop app: `python main.py`."""

import sys

from studio.ui.app import run

if __name__ == "__main__":
    sys.exit(run())
