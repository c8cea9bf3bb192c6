"""Training speed of `customkeras.training.Trainer` against Keras `fit` and the chapter's loop.

Same data for every contender: Fashion-MNIST through `customkeras.datasets` when a data
directory is available (`CUSTOMKERAS_DATA_DIR` or `--data-dir`), otherwise random data of
the same shape. Same model: the chapter's MLP (Flatten -> Dense(100, relu) ->
Dense(10, softmax)), batch 32, Nadam(learning_rate=0.01), same initial weights.

Contenders, each in its own subprocess so that its peak resident memory (`ru_maxrss`)
is its own:

* trainer      `Trainer` with its defaults, `--epochs` epochs;
* fit          Keras `model.fit` with its defaults, `--epochs` epochs;
* fit_spe32    Keras `model.fit` with `steps_per_execution=32`, `--epochs` epochs;
* eager_loop   exercise 13a's loop as the notebook writes it (random batches, a tape,
               `apply_gradients`, the constraints loop, metrics and a tqdm status bar
               updated every step), `--eager-steps` steps.

Throughput is steps/s over the epochs after the first (steady state; the first epoch
also pays tracing and XLA compilation, reported separately), best of the runs. Test accuracy after the
same number of epochs compares the Trainer with fit, each averaged over
`--accuracy-runs` shuffle seeds (same initial weights). Results go to
benchmarks/results/training.json.

The machine is shared: other processes make timings noisy. The ratios are what matter.

Usage: python benchmarks/bench_training.py [--data-dir DIR] [--epochs N] [--eager-steps N]
                                          [--accuracy-runs N] [--only CONTENDER ...]
"""

import argparse
import datetime
import io
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "training.json"
BATCH_SIZE = 32
LEARNING_RATE = 0.01
SEED = 42
CONTENDERS = ("trainer", "fit", "fit_spe32", "eager_loop")


def load_data(data_dir):
    """Fashion-MNIST splits as float32 in [0, 1], or random data of the same shapes."""
    import numpy as np

    data_dir = data_dir or os.environ.get("CUSTOMKERAS_DATA_DIR")
    if data_dir:
        try:
            from customkeras.datasets import load_fashion_mnist

            return load_fashion_mnist(data_dir), "fashion-mnist"
        except (ImportError, OSError, ValueError) as error:
            print(f"[bench] real data unavailable ({error}); using random data", file=sys.stderr)
    rng = np.random.default_rng(SEED)

    def split(n):
        return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n)

    return (split(55_000), split(5_000), split(10_000)), "random"


def build_model():
    import keras

    keras.utils.set_random_seed(SEED)
    return keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def run_epochs(contender, data, epochs, shuffle_seed):
    """Trains `epochs` epochs; returns per-epoch seconds and the test accuracy."""
    import keras

    from customkeras.training import Trainer

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = data
    model = build_model()  # the same initial weights for every run and contender
    keras.utils.set_random_seed(shuffle_seed)  # drives Keras fit's shuffling
    timer = epoch_timer()
    optimizer = keras.optimizers.Nadam(learning_rate=LEARNING_RATE)
    loss = "sparse_categorical_crossentropy"
    if contender == "trainer":
        trainer = Trainer(model, loss, optimizer, metrics=["accuracy"])
        trainer.fit(x_train, y_train, epochs=epochs, batch_size=BATCH_SIZE, seed=shuffle_seed,
                    validation_data=(x_valid, y_valid), callbacks=[timer], verbose=0)
        accuracy = trainer.evaluate(x_test, y_test, batch_size=BATCH_SIZE)["accuracy"]
    else:
        steps_per_execution = 32 if contender == "fit_spe32" else 1
        model.compile(optimizer, loss, metrics=["accuracy"],
                      steps_per_execution=steps_per_execution)
        model.fit(x_train, y_train, epochs=epochs, batch_size=BATCH_SIZE,
                  validation_data=(x_valid, y_valid), callbacks=[timer], verbose=0)
        accuracy = model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, verbose=0,
                                  return_dict=True)["accuracy"]
    steps = -(-len(x_train) // BATCH_SIZE)
    steady = timer.seconds[1:] or timer.seconds
    return {
        "epochs": epochs,
        "steps_per_epoch": steps,
        "epoch_seconds": [round(s, 3) for s in timer.seconds],
        "first_epoch_steps_per_s": steps / timer.seconds[0],
        "steps_per_s": steps / statistics.median(steady),
        "test_accuracy": float(accuracy),
    }


def run_contender(contender, data, epochs, runs):
    """Trains `runs` times with different shuffle seeds (same initial weights).

    Throughput is the best run's (other processes on the machine only ever slow a
    run down); peak RSS is measured after the first run, i.e. for one training.
    Test accuracy is the mean over the runs: one run's accuracy moves by 1-2 points
    with the shuffle order alone (Nadam(0.01) is noisy), so a single run cannot tell
    a 1-point difference between two trainers.
    """
    results = []
    for shuffle_seed in range(runs):
        results.append(run_epochs(contender, data, epochs, shuffle_seed))
        if shuffle_seed == 0:
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = max(results, key=lambda r: r["steps_per_s"])
    result["steps_per_s_runs"] = [r["steps_per_s"] for r in results]
    result["test_accuracies"] = [r["test_accuracy"] for r in results]
    result["test_accuracy"] = statistics.mean(result["test_accuracies"])
    result["peak_rss_mb"] = peak_rss_mb
    return result


def run_eager_loop(data, n_steps):
    """Exercise 13a's loop as the notebook writes it, for `n_steps` steps."""
    from collections import OrderedDict

    import keras
    import numpy as np
    import tensorflow as tf
    from tqdm.auto import trange

    (x_train, y_train), _, _ = data
    model = build_model()
    optimizer = keras.optimizers.Nadam(learning_rate=LEARNING_RATE)
    loss_fn = keras.losses.sparse_categorical_crossentropy
    mean_loss = keras.metrics.Mean()
    metrics = [keras.metrics.SparseCategoricalAccuracy()]

    def random_batch(x, y, batch_size=BATCH_SIZE):
        idx = np.random.randint(len(x), size=batch_size)
        return x[idx], y[idx]

    def one_step():
        x_batch, y_batch = random_batch(x_train, y_train)
        with tf.GradientTape() as tape:
            y_pred = model(x_batch)
            main_loss = tf.reduce_mean(loss_fn(y_batch, y_pred))
            loss = tf.add_n([main_loss] + model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        for variable in model.variables:
            if variable.constraint is not None:
                variable.assign(variable.constraint(variable))
        status = OrderedDict()
        mean_loss(loss)
        status["loss"] = mean_loss.result().numpy()
        for metric in metrics:
            metric(y_batch, y_pred)
            status[metric.name] = metric.result().numpy()
        return status

    one_step()  # warm-up: first-call overheads are not the loop's steady cost
    start = time.perf_counter()
    # The bar is drawn into a buffer: its cost is kept, the terminal's is not.
    with trange(1, n_steps + 1, desc="Epoch 1/1", file=io.StringIO()) as steps:
        for _ in steps:
            steps.set_postfix(one_step())
    seconds = time.perf_counter() - start
    return {"steps": n_steps, "seconds": round(seconds, 3), "steps_per_s": n_steps / seconds}


def child(contender, args):
    """Runs one contender in this process and prints its results as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data, source = load_data(args.data_dir)
    if contender == "eager_loop":
        result = run_eager_loop(data, args.eager_steps)
    else:
        # Keras fit's default setting runs twice, for timing; the accuracy comparison
        # uses fit_spe32 (the same computation, grouped differently).
        runs = min(2, args.accuracy_runs) if contender == "fit" else args.accuracy_runs
        result = run_contender(contender, data, args.epochs, runs)
    result["data"] = source
    result.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eager-steps", type=int, default=300)
    parser.add_argument("--accuracy-runs", type=int, default=3,
                        help="shuffle seeds averaged for the test accuracy")
    parser.add_argument("--only", choices=CONTENDERS, action="append")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return

    results = {}
    for contender in args.only or CONTENDERS:
        command = [sys.executable, __file__, "--child", contender, "--epochs", str(args.epochs),
                   "--eager-steps", str(args.eager_steps),
                   "--accuracy-runs", str(args.accuracy_runs)]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        print(f"[bench] {contender} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[contender] = json.loads(done.stdout.strip().splitlines()[-1])

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_end": os.getloadavg()},
        "model": "Flatten -> Dense(100, relu) -> Dense(10, softmax), batch 32, Nadam(0.01)",
        "results": results,
    }
    if {"trainer", "fit", "fit_spe32"} <= results.keys():
        best_fit = max(results["fit"]["steps_per_s"], results["fit_spe32"]["steps_per_s"])
        trainer = results["trainer"]
        report["ratios"] = {
            "trainer_vs_best_fit": trainer["steps_per_s"] / best_fit,
            "trainer_vs_fit_default": trainer["steps_per_s"] / results["fit"]["steps_per_s"],
            "accuracy_points_trainer_minus_fit": 100 * (
                trainer["test_accuracy"] - results["fit_spe32"]["test_accuracy"]),
        }
        if "eager_loop" in results:
            report["ratios"]["trainer_vs_eager_loop"] = (
                trainer["steps_per_s"] / results["eager_loop"]["steps_per_s"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{'contender':<12}{'steps/s':>10}{'1st epoch':>11}{'test acc':>10}{'peak RSS':>11}")
    for name, result in results.items():
        first = result.get("first_epoch_steps_per_s")
        accuracy = result.get("test_accuracy")
        print(f"{name:<12}{result['steps_per_s']:>10.0f}"
              f"{'' if first is None else f'{first:.0f}':>11}"
              f"{'' if accuracy is None else f'{accuracy:.4f}':>10}"
              f"{result['peak_rss_mb']:>9.0f}MB")
    for name, value in report.get("ratios", {}).items():
        print(f"{name}: {value:.2f}")
    print(f"data: {next(iter(results.values()))['data']}; written to {RESULTS}")


if __name__ == "__main__":
    main()
