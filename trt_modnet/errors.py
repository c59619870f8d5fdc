"""The one exception type for problems a user can act on."""


class MattingError(Exception):
    """A user-facing failure: the message is one line that names the file and the problem.

    Command-line entry points print it without a traceback and exit with status 2.
    """
