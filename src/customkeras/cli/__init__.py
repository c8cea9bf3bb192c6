"""The `customkeras` command: the chapter's experiments from one command.

Sub-commands: `train` (exercise 13 on Fashion-MNIST, the California-housing regressions,
or your own `MODULE:FUNCTION`; resumable), `evaluate` and `predict` (trained models,
loaded in safe mode), `verify` (the chapter's checks against this install) and `trace`
(`customkeras.tracing`: how a function is traced into graphs).
`customkeras COMMAND --help` for each.

Exit status: 0 success; 1 a failure at run time (missing data, a failed check, a damaged
or unsafe model, a damaged run or one in use by another process, a full disk, diverged
training); 2 bad usage; 130 interrupted by Ctrl-C.

Start-up: this package and the modules that build the parser import neither TensorFlow
nor Keras, so `--help`, `COMMAND --help` and usage errors answer at once. A command's
handler checks its values first, then calls `customkeras._import_all()` (TensorFlow
quietly, every component registered) before its heavy imports: `load_components`.
"""

import argparse
import sys

import customkeras
from customkeras.cli import evaluate, predict, trace, train, verify_command
from customkeras.cli.custom import one_line
from customkeras.cli.errors import EXIT_INTERRUPTED, CommandError
from customkeras.cli.startup import load_components  # noqa: F401  (its old home)

__all__ = ["build_parser", "main", "CommandError"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `customkeras` command."""
    parser = argparse.ArgumentParser(
        prog="customkeras",
        description="Chapter 12 of Hands-On Machine Learning (3rd ed.) from the command line: "
                    "train the chapter's experiments with the custom training loop, evaluate "
                    "and use the models, and verify the custom components.",
        epilog="Run 'customkeras COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version",
                        version=f"customkeras {customkeras.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an unexpected error (otherwise "
                             "every error is one line)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (train, evaluate, predict, verify_command, trace):
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the `customkeras` command with `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status (the console script passes it to `sys.exit`). Bad usage exits
        through `argparse` with status 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"customkeras {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:
        # Only here is customkeras.training loaded (a handler imported it): a library
        # error the command did not word itself is still one line.
        if _is_run_error(error):
            print(f"customkeras {args.command}: error: {error}", file=sys.stderr)
            return 1
        if args.debug:
            raise
        # Not one the command words itself: still one line, never a traceback.
        print(f"customkeras {args.command}: error: unexpected {one_line(error)} (a case the "
              f"command does not check yet; 'customkeras --debug {args.command} ...' shows "
              "the traceback for a report)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ncustomkeras {args.command}: aborted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _is_run_error(error: Exception) -> bool:
    run = sys.modules.get("customkeras.training.run.errors")
    return run is not None and isinstance(error, run.RunError)
