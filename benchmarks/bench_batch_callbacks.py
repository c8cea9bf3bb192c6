"""What a per-batch callback costs under `Trainer` (issue 21), against Keras `fit`.

A callback that overrides a batch hook (`on_train_batch_end`, ...) is called at every
batch, as under `fit`: the Trainer then runs executions of one step (one graph call per
batch) instead of its multi-step loop. This script measures the price on the chapter's
MLP (Flatten, Dense(100, relu), Dense(10, softmax)), batch 32, on random 28x28 inputs
(32,000 samples: 1,000 steps per epoch), Nadam(1e-2), 4 epochs; the figure is the steady
steps/s (median epoch after the first, timed by an epoch-level callback, which keeps the
fast path).

Contenders, each in its own process, in rounds (the best round kept):

* `trainer`: `Trainer(model, jit_compile=True)`, no callback (its fast path);
* `trainer_batch_callback`: the same with a callback that reads `logs["loss"]` in
  `on_train_batch_end` (called at every batch);
* `trainer_batch_callback_spe32`: the same with `steps_per_execution=32` (the callback
  is called once per execution of 32 steps, as Keras does with that setting);
* `keras_fit`, `keras_fit_batch_callback`: Keras `fit` with its defaults (TensorFlow
  backend), without and with the callback.

`jit_compile=True` is what `"auto"` chooses on a CPU for such a model; the loss and
weights under `jit_compile=False` are Keras's to 1e-5, only the speed differs.

Usage: python benchmarks/bench_batch_callbacks.py [--quick] [--rounds N]
Results: benchmarks/results/batch_callbacks.json
"""

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

from _harness import epoch_timer

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "batch_callbacks.json"
CONTENDERS = ("trainer", "trainer_batch_callback", "trainer_batch_callback_spe32",
              "keras_fit", "keras_fit_batch_callback")
BATCH_SIZE = 32
_MARKER = "@@bench-result@@ "


def _data(samples):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(samples, 28, 28)).astype("float32")
    return x, rng.integers(0, 10, samples)


def _model():
    import keras

    keras.utils.set_random_seed(42)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(100, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Nadam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _callbacks(contender):
    import keras

    class LossReader(keras.callbacks.Callback):  # the callbacks guide's loss printer, quiet
        def __init__(self):
            super().__init__()
            self.calls = 0
            self.last = None

        def on_train_batch_end(self, batch, logs=None):
            self.calls += 1
            self.last = logs["loss"]

    timer = epoch_timer()  # epoch hooks only: keeps the fast path
    reader = LossReader() if "batch_callback" in contender else None
    return timer, reader, [timer] + ([reader] if reader else [])


def child(contender, settings):
    """Trains one contender; returns its figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    x, y = _data(settings["samples"])
    model = _model()
    timer, reader, callbacks = _callbacks(contender)
    start = time.perf_counter()
    if contender.startswith("trainer"):
        from customkeras.training import Trainer

        spe = 32 if contender.endswith("spe32") else "auto"
        Trainer(model, steps_per_execution=spe, jit_compile=True).fit(
            x, y, batch_size=BATCH_SIZE, epochs=settings["epochs"], callbacks=callbacks,
            seed=0, verbose=0)
    else:
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=settings["epochs"],
                  callbacks=callbacks, verbose=0)
    wall = time.perf_counter() - start
    steps = -(-settings["samples"] // BATCH_SIZE)
    steady = sorted(timer.seconds[1:])
    median = steady[len(steady) // 2]
    return {"wall_seconds": round(wall, 3), "epoch_seconds": [round(s, 4) for s in timer.seconds],
            "steps_per_epoch": steps, "steady_steps_per_s": round(steps / median, 1),
            "batch_hook_calls": None if reader is None else reader.calls}


def _run(contender, settings):
    command = [sys.executable, __file__, "--child", contender, "--settings",
               json.dumps(settings)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    done = subprocess.run(command, capture_output=True, text=True, env=environment,
                          timeout=900)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARKER):
            return json.loads(line[len(_MARKER):])
    return {"unavailable": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs of 2,048 samples")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=pathlib.Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(_MARKER + json.dumps(child(args.child, json.loads(args.settings))), flush=True)
        return
    settings = {"samples": 2048 if args.quick else 32_000, "epochs": 2 if args.quick else 4,
                "batch_size": BATCH_SIZE}
    output = args.output or (pathlib.Path("/tmp/quick-batch_callbacks.json") if args.quick
                             else RESULTS)
    rounds = {name: [] for name in CONTENDERS}
    started = time.perf_counter()
    for index in range(args.rounds):
        for name in CONTENDERS:  # in rounds: a slow spell of the machine hits every one
            print(f"[bench] {name} (round {index + 1}/{args.rounds}) ...", file=sys.stderr,
                  flush=True)
            rounds[name].append(_run(name, settings))
    results = {}
    for name, runs in rounds.items():
        available = [r for r in runs if "unavailable" not in r]
        best = max(available, key=lambda r: r["steady_steps_per_s"]) if available else runs[0]
        results[name] = dict(best, rounds=[r.get("steady_steps_per_s") for r in runs])
    import keras
    import tensorflow as tf

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings, "rounds": args.rounds,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "contenders": results,
    }
    fast = results["trainer"].get("steady_steps_per_s")
    per_batch = results["trainer_batch_callback"].get("steady_steps_per_s")
    if fast and per_batch:
        report["per_batch_callback_slowdown"] = round(fast / per_batch, 2)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    for name, result in results.items():
        print(f"{name:<30} {result.get('steady_steps_per_s', result.get('unavailable'))} "
              f"steps/s (rounds {result['rounds']})")
    print(f"[bench] written to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
