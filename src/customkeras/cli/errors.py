"""The one exception type the command line turns into a message and an exit code."""

# The exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it; the
# same value as `customkeras.training.run.EXIT_INTERRUPTED` (kept here so that the
# command's start-up does not import the training package).
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user-facing failure: `main` prints the message (no traceback) and exits.

    Args:
        message: what went wrong and how to fix it.
        exit_code: the process exit status. Defaults to 2 (bad usage), as argparse uses.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
