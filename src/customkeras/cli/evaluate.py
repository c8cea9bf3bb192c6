"""`customkeras evaluate`: a trained model's loss and metrics on the test set."""

import argparse
import json

from customkeras import experiments
from customkeras.cli import artifacts, config, loading


def add_parser(subparsers) -> None:
    """Adds `evaluate` to the top-level parser."""
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained model on a test set",
        description="Load a model (safe mode) and compute its loss and metrics on the test set "
                    "with the custom Trainer. Given a run directory, it uses the run's loss, "
                    "metrics and batch size, so it reproduces the run's metrics.json.",
        epilog="example:\n  customkeras evaluate runs/fashion-mnist-20250101-120000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL",
                        help="a run directory or a .keras file")
    loading.add_model_options(parser)
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="evaluation batch size (default: the run's, else 32)")
    housing = parser.add_argument_group("housing (default: the run's settings)")
    housing.add_argument("--loss", choices=experiments.HOUSING_LOSSES, help="default: mse")
    housing.add_argument("--threshold", type=float, metavar="T",
                         help="Huber threshold (default: 1.0)")
    housing.add_argument("--metrics", metavar="NAMES",
                         help=f"comma-separated, among {', '.join(experiments.HOUSING_METRICS)} "
                              "(default: mae)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs `customkeras evaluate`; returns the exit status."""
    from customkeras.cli.startup import load_components

    load_components()
    from customkeras import training

    source = loading.find_model(args.model)
    dataset, data_dir = loading.dataset_and_data_dir(args, source)
    run_values = source.run_values or {}
    values = {"dataset": dataset}
    for key in ("loss", "threshold", "metrics", "batch_size", "jit_compile"):
        given = getattr(args, key, None)
        values[key] = given if given is not None else run_values.get(key)
    if dataset == experiments.FASHION_MNIST:
        values.pop("threshold")
    if values["jit_compile"] is None:
        values.pop("jit_compile")  # a .keras file alone, or a run from before the option
    settings = config.resolve(values)
    model = loading.load_model(source.path, unsafe=args.unsafe)
    x_test, y_test = loading.load_data(dataset, data_dir).test
    trainer = training.Trainer(
        model, experiments.build_loss(dataset, settings.loss, settings.threshold or 1.0),
        metrics=experiments.build_metrics(dataset, settings.metrics, settings.threshold or 1.0),
        jit_compile=config.JIT_COMPILE[settings.jit_compile])  # the run's test numbers
    results = artifacts.as_test_metrics(trainer.evaluate(
        x_test, y_test, batch_size=settings.batch_size, verbose=0, return_dict=True))
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{source.path} on the {dataset} test set ({len(x_test)} samples):")
        for name, value in results.items():
            print(f"  {name:<16} {value:.6f}")
    return 0
