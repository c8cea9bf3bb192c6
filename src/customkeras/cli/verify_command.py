"""`customkeras verify`'s options, without Keras: the checks are in `customkeras.cli.verify`.

The command's parser is built from this module so that `customkeras --help` and
`customkeras verify --help` answer without importing TensorFlow or Keras.
"""

import argparse

from customkeras import _backend


def add_parser(subparsers) -> None:
    """Adds `verify` to the top-level parser."""
    parser = subparsers.add_parser(
        "verify", help="run the chapter's checks against this install",
        description="Compare customkeras's components with references, as the chapter does: "
                    "exercise 12c (LayerNormalization vs Keras on the housing training set), "
                    "Huber loss vs keras.losses.Huber, HuberMetric's streaming figures, "
                    "MomentumSGD vs SGD, softplus stability, and the autodiff figures (gradients "
                    "36 and 10, Hessian [[6, 2], [2, 0]]). Exit status 1 if any check fails. "
                    "Without the housing data, 12c runs on a stand-in input and says so. "
                    "--backend runs them on another Keras backend (in a child process); "
                    "the autodiff checks are TensorFlow-only.")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory holding california-housing/ (default: "
                             "$CUSTOMKERAS_DATA_DIR, then scikit-learn's cache and download)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--backend", choices=_backend.BACKENDS, default=None,
                        help="Keras backend to run the checks on (default: the one Keras "
                             "uses in this process, set by KERAS_BACKEND)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs `customkeras verify` (`customkeras.cli.verify.handle`); returns the exit status."""
    from customkeras.cli.startup import load_components

    load_components()
    from customkeras.cli import verify

    return verify.handle(args)
