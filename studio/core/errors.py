"""What a user reads of a failure: a message meant for them alone, and of an unexpected
exception its message, never its class name (that and the traceback go to the log)."""

from __future__ import annotations


class UserFacingError(Exception):
    """A mixin for errors whose message is written for the user (what does not fit, what
    to do): shown alone. ModelFileError, RequestError, InputError and others have it."""

    for_user = True


def first_line(error: BaseException) -> str:
    """The first line of its message, else its class name (nothing else says what it is)."""
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else getattr(error, "type_name", type(error).__name__)


def user_message(error: BaseException, who: str = "the backend") -> str:
    """The line to show: a user-facing error's message (one from another process too:
    `RemoteError.for_user`), else that `who` failed unexpectedly, with the message."""
    if getattr(error, "for_user", False):
        return first_line(error)
    return f"{who} failed unexpectedly: {first_line(error)} (details in the log)"
