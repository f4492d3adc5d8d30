"""A plugin whose entry point is not a Backend (tests only)."""


class NotABackend:
    pass
