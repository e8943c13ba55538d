"""Errors a user can cause. The CLI prints their message (one line) and exits non-zero."""


class CetError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""

    exit_code = 2


class StoreUnavailable(CetError):
    """The knowledge-base store cannot be opened or reached."""

    exit_code = 3
