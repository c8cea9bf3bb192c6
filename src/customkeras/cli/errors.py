"""The one exception type the command line turns into a message and an exit code."""


class CommandError(Exception):
    """A user-facing failure: `main` prints the message (no traceback) and exits.

    Args:
        message: what went wrong and how to fix it.
        exit_code: the process exit status. Defaults to 2 (bad usage), as argparse uses.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
