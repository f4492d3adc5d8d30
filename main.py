"""Launch the Studio desktop app: `python main.py`."""

import sys

if __name__ == "__main__":
    # Imported here, not above: a generation worker (multiprocessing's spawn) imports this
    # module again, and must not load Qt for nothing.
    from studio.ui.app import run

    sys.exit(run())
