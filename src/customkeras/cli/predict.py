"""`customkeras predict`: a trained model's predictions for the first test samples."""

from __future__ import annotations  # `np.ndarray` annotations without importing NumPy

import argparse
import json

from customkeras import _checks, experiments
from customkeras.cli import config, loading


def add_parser(subparsers) -> None:
    """Adds `predict` to the top-level parser."""
    parser = subparsers.add_parser(
        "predict", help="predict the first test samples with a trained model",
        description="Load a model (safe mode) and predict the first N test samples: class "
                    "names and probabilities for Fashion-MNIST, house values (in $100,000) "
                    "for housing, next to the true ones.",
        epilog="example:\n  customkeras predict runs/fashion-mnist-20250101-120000/model.keras "
               "--dataset fashion-mnist --n 10",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="a .keras file or a run directory")
    parser.add_argument("--n", type=int, default=10, metavar="N",
                        help="number of test samples to predict (default: 10)")
    loading.add_model_options(parser)
    parser.set_defaults(handler=handle)


def _rows(dataset: str, predictions: np.ndarray, y_true: np.ndarray) -> list[dict]:
    if dataset == experiments.FASHION_MNIST:
        from customkeras import datasets

        classes = datasets.FASHION_MNIST_CLASSES
        best = predictions.argmax(axis=-1)
        return [{"index": i, "predicted": classes[int(best[i])],
                 "probability": float(predictions[i, best[i]]), "true": classes[int(y_true[i])]}
                for i in range(len(best))]
    return [{"index": i, "predicted": float(predictions[i, 0]), "true": float(y_true[i, 0])}
            for i in range(len(predictions))]


def handle(args: argparse.Namespace) -> int:
    """Runs `customkeras predict`; returns the exit status."""
    from customkeras.cli.startup import load_components

    config.checked(_checks.positive_int, "n", args.n)
    load_components()
    import numpy as np

    source = loading.find_model(args.model)
    dataset, data_dir = loading.dataset_and_data_dir(args, source)
    model = loading.load_model(source.path, unsafe=args.unsafe)
    x_test, y_test = loading.load_data(dataset, data_dir).test
    n = min(args.n, len(x_test))
    predictions = np.asarray(model.predict(x_test[:n], verbose=0))
    rows = _rows(dataset, predictions, y_test[:n])
    if args.json:
        print(json.dumps(rows))
    elif dataset == experiments.FASHION_MNIST:
        print(f"{'#':>4}  {'predicted':<12} {'prob.':>6}  {'true':<12}")
        for row in rows:
            mark = "" if row["predicted"] == row["true"] else "  <- wrong"
            print(f"{row['index']:>4}  {row['predicted']:<12} {row['probability']:>6.3f}  "
                  f"{row['true']:<12}{mark}")
    else:
        print(f"{'#':>4}  {'predicted':>10}  {'true':>10}   (median house value, $100,000)")
        for row in rows:
            print(f"{row['index']:>4}  {row['predicted']:>10.3f}  {row['true']:>10.3f}")
    return 0
