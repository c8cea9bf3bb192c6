"""Throughput of `customkeras.training.Trainer` under `tf.distribute`, same global batch.

The chapter's Fashion-MNIST MLP (Flatten -> Dense(100, relu) -> Dense(10, softmax)),
Nadam(0.01), the first `--samples` training images (random data of the same shape
without a data directory), shuffled per epoch in the same order for every contender.
Each contender runs in its own process(es); throughput is steps/s over the second
epoch (the first pays tracing), best of `--repeats`:

* one_device       the Trainer without a strategy and without XLA (the code path the
                   distributed runs use: XLA is off under a strategy);
* one_device_xla   the Trainer on one device with XLA (what a strategy gives up);
* mirrored_1/2     MirroredStrategy over 1 / 2 logical CPU devices of this machine;
* workers_1/2      MultiWorkerMirroredStrategy with 1 / 2 worker processes on
                   127.0.0.1 (TF_CONFIG each, gRPC between them);
* *_slicing        a minimal distributed loop whose replicas slice the global batch
                   in-graph from tensors in memory, as the Trainer does;
* *_dataset        the same loop fed by `strategy.experimental_distribute_dataset`.

The last two decide whether the Trainer should take its batches from a distributed
`tf.data` pipeline instead of slicing them in-graph: same step, same batches, only the
input path differs. Every contender trains on the same batches: their final losses
agree to float rounding (at batch 32 to the printed digits; Nadam turns rounding
differences in near-zero gradients into weight steps of the order of the learning
rate, so at batch 256 they drift apart in the fourth digit).

What a 2-core CPU machine can and cannot show. Two logical CPU devices are one pool
of 2 cores: a second replica adds no compute, so `mirrored_2` can only measure what
mirroring costs (per-replica ops, the cross-replica sum of gradients), never a
speed-up. Two worker processes compete for the same 2 cores and exchange every
step's gradients over gRPC, so `workers_2` measures the synchronisation overhead of
multi-worker training on one host; real clusters add network latency to it. On GPUs
each replica has its own device: for a model whose step is dominated by compute
(large layers, global batch grown with the replicas), N GPUs approach N times the
throughput with NCCL all-reduce; for this tiny MLP at batch 32 the per-step
overhead dominates and a second GPU would gain little. Multi-worker throughput is
then bounded by the network: each step all-reduces the gradients (the model's size
in bytes, here ~0.3 MB) between hosts.

Results go to benchmarks/results/distribute.json; ratios are printed against
`one_device` at the same batch size.

Usage: python benchmarks/bench_distribute.py [--data-dir DIR] [--samples N]
                                            [--batch-sizes 32 256] [--repeats N]
                                            [--only CONTENDER ...]
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tempfile
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "distribute.json"
SEED = 42
LEARNING_RATE = 0.01
EPOCHS = 2
STEPS_PER_EXECUTION = 100
# name: (strategy, logical CPU devices, worker processes, loop)
CONTENDERS = {
    "one_device": ("default", 1, 1, "trainer"),
    "one_device_xla": ("default", 1, 1, "trainer_xla"),
    "mirrored_1": ("mirrored", 1, 1, "trainer"),
    "mirrored_2": ("mirrored", 2, 1, "trainer"),
    "mirrored_2_slicing": ("mirrored", 2, 1, "slicing"),
    "mirrored_2_dataset": ("mirrored", 2, 1, "dataset"),
    "workers_1": ("multi-worker", 1, 1, "trainer"),
    "workers_2": ("multi-worker", 1, 2, "trainer"),
    "workers_2_slicing": ("multi-worker", 1, 2, "slicing"),
    "workers_2_dataset": ("multi-worker", 1, 2, "dataset"),
}


# ---- child process: one contender ---------------------------------------------------------

def make_strategy(kind, devices):
    """Creates the strategy first, as a multi-worker one requires."""
    import tensorflow as tf

    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])
    from customkeras.training import create_strategy

    return create_strategy(kind, timeout_seconds=300 if kind == "multi-worker" else None)


def load_images(data_dir, samples):
    import numpy as np

    try:
        from customkeras.datasets import load_fashion_mnist

        (x, y), _, _ = load_fashion_mnist(data_dir)
        source = "fashion-mnist"
    except (OSError, ValueError) as error:
        print(f"[bench] real data unavailable ({error}); using random data", file=sys.stderr)
        rng = np.random.default_rng(SEED)
        x, y, source = rng.random((55_000, 28, 28), dtype=np.float32), rng.integers(0, 10, 55_000), "random"
    return x[:samples], y[:samples], source


def build(strategy):
    import keras

    with strategy.scope():
        keras.utils.set_random_seed(SEED)
        model = keras.Sequential([
            keras.Input((28, 28)), keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        optimizer = keras.optimizers.Nadam(LEARNING_RATE)
        optimizer.build(model.trainable_variables)  # not inside the traced loop
        return model, optimizer


def run_trainer(strategy, x, y, batch_size, jit_compile):
    import keras

    from customkeras.training import Trainer

    model, optimizer = build(strategy)
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    trainer = Trainer(model, "sparse_categorical_crossentropy", optimizer,
                      metrics=["accuracy"], strategy=strategy, jit_compile=jit_compile)
    history = trainer.fit(x, y, epochs=EPOCHS, batch_size=batch_size, seed=SEED, verbose=0,
                          callbacks=[EpochTimer()])
    return times[-1], history.history["loss"][-1]


def run_loop(strategy, x, y, batch_size, source):
    """A minimal distributed loop; batches sliced in-graph or from a distributed dataset."""
    import keras
    import tensorflow as tf

    from customkeras.training.sources import epoch_order

    model, optimizer = build(strategy)
    with strategy.scope():
        mean_loss = keras.metrics.Mean()
    replicas = strategy.num_replicas_in_sync
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="none")

    def step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            per_sample = loss_fn(y_batch, model(x_batch, training=True))
            loss = tf.reduce_sum(per_sample) / batch_size  # this replica's share
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        mean_loss.update_state(loss * replicas)

    def sliced_step(x_global, y_global):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        share = batch_size // replicas
        step(x_global[replica * share:(replica + 1) * share],
             y_global[replica * share:(replica + 1) * share])

    x_t, y_t = tf.constant(x), tf.constant(y)

    @tf.function
    def sliced_loop(order, first, count):
        for i in tf.range(count):
            indices = order[(first + i) * batch_size:(first + i + 1) * batch_size]
            strategy.run(sliced_step, args=(tf.gather(x_t, indices), tf.gather(y_t, indices)))

    @tf.function
    def dataset_loop(iterator, count):
        for _ in tf.range(count):
            strategy.run(step, args=next(iterator))

    steps = len(x) // batch_size
    seconds = 0.0
    for epoch in range(EPOCHS):
        mean_loss.reset_state()
        order = epoch_order(len(x), SEED, epoch, shuffle=True)
        if source == "dataset":
            dataset = tf.data.Dataset.from_tensor_slices((x[order], y[order]))
            dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
            iterator = iter(strategy.experimental_distribute_dataset(dataset))
        start = time.perf_counter()
        for first in range(0, steps, STEPS_PER_EXECUTION):
            count = tf.constant(min(STEPS_PER_EXECUTION, steps - first))
            if source == "dataset":
                dataset_loop(iterator, count)
            else:
                sliced_loop(tf.constant(order), tf.constant(first), count)
        loss = float(mean_loss.result())
        seconds = time.perf_counter() - start
    return seconds, loss


def child(args):
    kind, devices, _, loop = CONTENDERS[args.child]
    strategy = make_strategy(kind, devices)
    x, y, source = load_images(args.data_dir, args.samples)
    if loop.startswith("trainer"):
        seconds, loss = run_trainer(strategy, x, y, args.batch_size, loop == "trainer_xla")
        steps = -(-len(x) // args.batch_size)
    else:
        seconds, loss = run_loop(strategy, x, y, args.batch_size, loop)
        steps = len(x) // args.batch_size
    with open(args.out, "w") as stream:
        json.dump({"steps_per_s": steps / seconds, "samples_per_s": steps * args.batch_size / seconds,
                   "epoch_seconds": seconds, "final_loss": loss, "data": source,
                   "replicas": strategy.num_replicas_in_sync}, stream)


# ---- parent process -----------------------------------------------------------------------

def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_once(name, batch_size, args, directory):
    """Runs one contender (all its worker processes); returns the chief's results."""
    workers = CONTENDERS[name][2]
    ports = free_ports(workers)
    processes, outputs = [], []
    for index in range(workers):
        out = os.path.join(directory, f"{name}-{batch_size}-{index}.json")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if CONTENDERS[name][0] == "multi-worker":
            env["TF_CONFIG"] = json.dumps({
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index}})
        command = [sys.executable, __file__, "--child", name, "--batch-size", str(batch_size),
                   "--samples", str(args.samples), "--out", out]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
        outputs.append(out)
    try:
        errors = [process.communicate(timeout=900)[1] for process in processes]
    finally:
        for process in processes:  # SIGKILL: TensorFlow catches SIGTERM
            process.kill()
    if any(process.returncode for process in processes):
        raise RuntimeError(f"{name} failed:\n" + "\n".join(e[-2000:] for e in errors))
    with open(outputs[0]) as stream:
        return json.load(stream)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("CUSTOMKERAS_DATA_DIR"))
    parser.add_argument("--samples", type=int, default=20_480)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=tuple(CONTENDERS))
    parser.add_argument("--child", choices=tuple(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for batch_size in args.batch_sizes:
            for name in args.only or CONTENDERS:
                runs = [run_once(name, batch_size, args, directory) for _ in range(args.repeats)]
                best = max(runs, key=lambda r: r["steps_per_s"])
                best["steps_per_s_runs"] = [r["steps_per_s"] for r in runs]
                results.setdefault(str(batch_size), {})[name] = best
                print(f"batch {batch_size:4d}  {name:20s} {best['steps_per_s']:8.0f} steps/s  "
                      f"loss {best['final_loss']:.5f}", flush=True)
    if args.only and RESULTS.exists():  # update the other contenders' results, keep them
        previous = json.loads(RESULTS.read_text())["results"]
        for batch_size, by_name in results.items():
            previous.setdefault(batch_size, {}).update(by_name)
        results = previous
    print("\nratios to one_device (same global batch):")
    for batch_size, by_name in results.items():
        reference = by_name.get("one_device", {}).get("steps_per_s")
        for name in CONTENDERS:
            if reference and name in by_name:
                by_name[name]["ratio_to_one_device"] = by_name[name]["steps_per_s"] / reference
                print(f"  batch {batch_size:>4}  {name:20s} "
                      f"{by_name[name]['steps_per_s']:7.0f} steps/s  "
                      f"{by_name[name]['ratio_to_one_device']:5.2f}x")
    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_end": list(os.getloadavg())},
        "model": "Flatten -> Dense(100, relu) -> Dense(10, softmax), Nadam(0.01)",
        "samples": args.samples, "epochs": EPOCHS, "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
