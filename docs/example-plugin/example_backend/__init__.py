"""An example Studio backend (see docs/writing-a-backend.md). Importing it imports nothing."""
