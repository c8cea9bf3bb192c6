"""A `tf.data` pipeline through `customkeras.training.Trainer` against Keras `fit`.

Workload tf_data: exercise 13a's MLP, Nadam(1e-2), 5 epochs on Fashion-MNIST, fed by the
same pipeline in every contender: `from_tensor_slices((x, y))`, `shuffle(10_000,
seed)` (reshuffled each epoch), `batch(32)`, `prefetch(AUTOTUNE)`. Contenders, each in
its own process: Keras `fit` on the pipeline with `steps_per_execution=32`, and with
`jit_compile=True` too; `Trainer.fit` on the pipeline; and, beside them, `Trainer.fit`
on the resident arrays (its in-memory path, batches gathered in-graph). Then the
chapter's data streamed from TFRecord shards (`customkeras.datasets.stream_fashion_mnist`,
shuffled over the split; shards written before the clock starts) through `fit(spe=32)`
and `Trainer`. Figures as in bench_training.py. Results: benchmarks/results/input_pipeline.json.

Usage: python benchmarks/bench_input.py [--quick] [--rounds N] [--only CONTENDER ...]
                                       [--data-dir DIR]
"""

import pathlib

import _harness
import _models
from _harness import BATCH_SIZE, RESULTS_DIR, load_data, run_benchmark
from bench_training import drive, trainer_train, xla_reasons

RESULTS = RESULTS_DIR / "input_pipeline.json"
SHUFFLE_BUFFER = 10_000


def settings_for(workload, quick):
    settings = {"epochs": 5, "validation": False}
    if quick:
        settings.update(epochs=2, train_samples=1024, valid_samples=256, test_samples=512)
    return settings


def pipeline(x, y, seed):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


def stream(settings, split, shuffle):
    """`stream_fashion_mnist(split)`, cut to the workload's size; shards written now."""
    from customkeras.datasets import stream_fashion_mnist

    _harness._data_source = "fashion-mnist, TFRecord shards"
    dataset = stream_fashion_mnist(split, batch_size=BATCH_SIZE, shuffle=shuffle,
                                   seed=settings["seed"], data_dir=settings.get("data_dir"))
    samples = settings.get(f"{split}_samples")
    return dataset.take(-(-samples // BATCH_SIZE)) if samples else dataset


def inputs(settings, streamed):
    """`(train dataset, test dataset, training samples)` of the pipeline or the stream."""
    if streamed:  # no arrays in memory: the stream's peak RSS is its own
        n_train = min(settings.get("train_samples") or 55_000, 55_000)
        return stream(settings, "train", True), stream(settings, "test", False), n_train
    (x_train, y_train), _, (x_test, y_test) = load_data(settings)
    return (pipeline(x_train, y_train, settings["seed"]), pipeline(x_test, y_test, 0),
            len(x_train))


def fit_dataset(settings, jit_compile="auto", streamed=False, steps_per_execution=32):
    """Keras `fit` on the pipeline (or the stream), on whichever backend this process runs."""
    dataset, test, n_train = inputs(settings, streamed)
    model = _models.mlp()
    _models.set_random_seed(settings["seed"])

    def setup():
        model.compile(_models.nadam(), _models.LOSS, metrics=["accuracy"],
                      steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        return lambda epochs, initial_epoch, callbacks: model.fit(
            dataset, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)

    result = drive(setup, settings, n_train)
    result["test_accuracy"] = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    result["jit_compile"] = bool(model.jit_compile)
    return result


def trainer_dataset(settings, streamed=False):
    from customkeras.training import Trainer

    dataset, test, n_train = inputs(settings, streamed)
    model = _models.mlp()
    _models.set_random_seed(settings["seed"])
    trainer = None

    def setup():
        nonlocal trainer
        trainer = Trainer(model, _models.LOSS, _models.nadam(), metrics=["accuracy"])
        return lambda epochs, initial_epoch, callbacks: trainer.fit(
            dataset, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)

    result = drive(setup, settings, n_train)
    result["test_accuracy"] = trainer.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    result["xla"] = xla_reasons(trainer)
    return result


CONTENDERS = {"tf_data": {
    "tf_fit_spe32": ("tensorflow", fit_dataset),
    "tf_fit_spe32_xla": ("tensorflow", lambda s: fit_dataset(s, jit_compile=True)),
    "trainer_dataset": ("tensorflow", trainer_dataset),
    "trainer_arrays": ("tensorflow", trainer_train),
    "tf_fit_spe32_stream": ("tensorflow", lambda s: fit_dataset(s, streamed=True)),
    "trainer_stream": ("tensorflow", lambda s: trainer_dataset(s, streamed=True)),
}}

if __name__ == "__main__":
    run_benchmark(pathlib.Path(__file__), __doc__.split("\n")[0], CONTENDERS, settings_for, RESULTS)
