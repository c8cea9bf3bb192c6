"""Training speed of `customkeras.training.Trainer` against the peers a user would pick instead.

Same data for every contender: Fashion-MNIST (`CUSTOMKERAS_DATA_DIR` or `--data-dir`;
random data of the same shape without it). Exercise 13a's MLP (Flatten -> Dense(100,
relu) -> Dense(10, softmax)), Nadam(1e-2), batch 32, the same initial weights.

Contenders, each in its own process (see `_harness.py`):

* tf_fit, tf_fit_spe32, tf_fit_spe32_xla   Keras `fit` on TensorFlow: defaults;
    `steps_per_execution=32`; that and `jit_compile=True`;
* jax_fit, jax_fit_spe32                    Keras `fit` on the JAX backend (`KERAS_BACKEND=jax`);
* jax_optax                                 a hand-written JAX + optax `lax.fori_loop` over
                                            resident data (`_jax_loops.py`; for the CNN a
                                            Python loop over a jitted step, faster on CPU);
* eager_loop                                exercise 13a's loop as the notebook writes it
                                            (`--eager-steps` steps; its 5-epoch time is extrapolated);
* trainer                                   `customkeras.training.Trainer`, defaults.

Workloads:

* main              5 epochs with validation: wall time from `compile` / `Trainer(...)` to the
                    end of `fit` (tracing and compilation included), steady steps/s (median
                    epoch after the first, validation included), test accuracy, peak RSS;
* epoch_calls       the same 5 epochs as `fit(epochs=e + 1, initial_epoch=e)` five times;
* evaluate_predict  `evaluate` and `predict` on the test set: first call and best later call;
* cnn               a small CNN (`_models.cnn`), 2 epochs on the first 20,000 images:
                    where arithmetic, not dispatch, takes the time.

Results: benchmarks/results/training.json; `python benchmarks/report.py` renders them.

Usage: python benchmarks/bench_training.py [--quick] [--rounds N] [--workload W ...]
                                          [--only CONTENDER ...] [--data-dir DIR]
"""

import io
import pathlib
import time

import _jax_loops
import _models
from _harness import (BATCH_SIZE, RESULTS_DIR, epoch_timer, load_data, run_benchmark,
                      steps_per_epoch, training_figures)

RESULTS = RESULTS_DIR / "training.json"


def settings_for(workload, quick):
    settings = {"epochs": 5, "validation": True, "eager_steps": 300, "repeats": 4}
    if workload == "cnn":  # the first 20,000 images: ~2 minutes a round on 2 cores
        settings.update(epochs=2, validation=False, train_samples=20_000)
    if workload == "evaluate_predict":
        settings.update(epochs=0)
    if quick:
        settings.update(epochs=min(settings["epochs"], 2), train_samples=1024, valid_samples=256,
                        test_samples=512, eager_steps=20, repeats=2)
    return settings


def drive(setup, settings, n_train, batch_size=BATCH_SIZE):
    """Times `setup()` then the epochs: one `fit` call, or one call per epoch.

    `setup()` compiles or wraps the model and returns `fit(epochs, initial_epoch,
    callbacks)`; the wall time covers both, so tracing and compilation count.
    """
    timer = epoch_timer()
    epochs = settings["epochs"]
    start = time.perf_counter()
    fit = setup()
    if settings.get("per_epoch_calls"):
        call_seconds = []
        for epoch in range(epochs):
            call_start = time.perf_counter()
            fit(epoch + 1, epoch, [timer])
            call_seconds.append(time.perf_counter() - call_start)
    else:
        fit(epochs, 0, [timer])
    wall = time.perf_counter() - start
    result = training_figures(wall, call_seconds if settings.get("per_epoch_calls")
                              else timer.seconds, steps_per_epoch(n_train, batch_size))
    if settings.get("per_epoch_calls"):
        result["fit_epoch_seconds"] = [round(s, 4) for s in timer.seconds]
    return result


def keras_train(settings, steps_per_execution=1, jit_compile="auto", build=_models.mlp,
                load=load_data, batch_size=BATCH_SIZE):
    """Keras `fit` on whichever backend this process runs; `load(settings, tensorflow)`
    gives the data's three splits (default: Fashion-MNIST, `_harness.load_data`)."""
    import keras

    tensorflow = keras.backend.backend() == "tensorflow"
    (x_train, y_train), validation, test = load(settings, tensorflow)
    model = build()
    _models.set_random_seed(settings["seed"])  # drives fit's shuffling

    def setup():
        model.compile(_models.nadam(), _models.LOSS, metrics=["accuracy"],
                      steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        return lambda epochs, initial_epoch, callbacks: model.fit(
            x_train, y_train, epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size,
            validation_data=validation if settings.get("validation") else None,
            callbacks=callbacks, verbose=0)

    result = drive(setup, settings, len(x_train), batch_size)
    result["test_accuracy"] = model.evaluate(*test, batch_size=batch_size, verbose=0,
                                             return_dict=True)["accuracy"]
    result["jit_compile"] = bool(model.jit_compile)  # what Keras resolved "auto" to here
    return result


def trainer_train(settings, build=_models.mlp, load=load_data, batch_size=BATCH_SIZE,
                  jit_compile="auto"):
    """`Trainer.fit` (with its defaults but `jit_compile`); `load` as for `keras_train`."""
    from customkeras.training import Trainer

    (x_train, y_train), validation, test = load(settings, True)
    model = build()
    trainer = None

    def setup():
        nonlocal trainer
        trainer = Trainer(model, _models.LOSS, _models.nadam(), metrics=["accuracy"],
                          jit_compile=jit_compile)
        return lambda epochs, initial_epoch, callbacks: trainer.fit(
            x_train, y_train, epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size,
            validation_data=validation if settings.get("validation") else None,
            seed=settings["seed"], callbacks=callbacks, verbose=0)

    _models.set_random_seed(settings["seed"])
    result = drive(setup, settings, len(x_train), batch_size)
    result["test_accuracy"] = trainer.evaluate(*test, batch_size=batch_size, verbose=0,
                                               return_dict=True)["accuracy"]
    result["xla"] = xla_reasons(trainer)
    return result


def xla_reasons(trainer):
    """`{loop kind: why it ran with or without XLA}`: `jit_compile="auto"` decides from
    the device and the step's ops, so a result says what was decided where it ran."""
    return {kind: reason for kind, (_, reason) in trainer.xla_decisions.items()}


def eager_loop(settings):
    """Exercise 13a's loop as the notebook writes it, for `eager_steps` steps."""
    from collections import OrderedDict

    import keras
    import numpy as np
    import tensorflow as tf
    from tqdm.auto import trange

    (x_train, y_train), _, _ = load_data(settings)
    model = _models.mlp()
    optimizer = _models.nadam()
    loss_fn = keras.losses.sparse_categorical_crossentropy
    mean_loss = keras.metrics.Mean()
    metrics = [keras.metrics.SparseCategoricalAccuracy()]
    rng = np.random.default_rng(settings["seed"])

    def one_step():
        index = rng.integers(len(x_train), size=BATCH_SIZE)
        x_batch, y_batch = x_train[index], y_train[index]
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

    one_step()  # first-call overheads are not the loop's steady cost
    n_steps = settings["eager_steps"]
    start = time.perf_counter()
    with trange(1, n_steps + 1, desc="Epoch 1/1", file=io.StringIO()) as steps:  # bar drawn, not shown
        for _ in steps:
            steps.set_postfix(one_step())
    seconds = time.perf_counter() - start
    steps_per_s = n_steps / seconds
    total_steps = settings["epochs"] * steps_per_epoch(len(x_train))
    return {"steps_timed": n_steps, "steady_steps_per_s": steps_per_s,
            "extrapolated_wall_seconds": total_steps / steps_per_s}


def keras_evaluate_predict(settings, steps_per_execution=1, jit_compile="auto"):
    import keras

    tensorflow = keras.backend.backend() == "tensorflow"
    _, _, (x_test, y_test) = load_data(settings, tensorflow)
    model = _models.mlp()
    start = time.perf_counter()
    model.compile(_models.nadam(), _models.LOSS, metrics=["accuracy"],
                  steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    setup = time.perf_counter() - start
    calls = {"evaluate": lambda: model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, verbose=0),
             "predict": lambda: model.predict(x_test, batch_size=BATCH_SIZE, verbose=0)}
    return time_calls(calls, settings, len(x_test), setup)


def trainer_evaluate_predict(settings):
    from customkeras.training import Trainer

    _, _, (x_test, y_test) = load_data(settings)
    model = _models.mlp()
    start = time.perf_counter()
    trainer = Trainer(model, _models.LOSS, _models.nadam(), metrics=["accuracy"])
    setup = time.perf_counter() - start
    calls = {"evaluate": lambda: trainer.evaluate(x_test, y_test, batch_size=BATCH_SIZE,
                                                  verbose=0, return_dict=True),
             "predict": lambda: trainer.predict(x_test, batch_size=BATCH_SIZE,
                                                verbose=0)}
    return time_calls(calls, settings, len(x_test), setup)


def time_calls(calls, settings, n_samples, setup_seconds):
    """Each call `repeats` times; a call that fails is that call's "unavailable" row."""
    from _harness import guarded

    def timed(call):
        seconds = []
        for _ in range(settings["repeats"]):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        return _jax_loops.call_figures(seconds, n_samples, setup_seconds)

    return {name: guarded(timed, call) for name, call in calls.items()}


def _keras(backend, function=keras_train, **options):
    return backend, lambda settings: function(settings, **options)


def _per_epoch(contender):
    backend, function = contender
    return backend, lambda settings: function(dict(settings, per_epoch_calls=True))


_PEERS = {
    "tf_fit": _keras("tensorflow"),
    "tf_fit_spe32": _keras("tensorflow", steps_per_execution=32),
    "tf_fit_spe32_xla": _keras("tensorflow", steps_per_execution=32, jit_compile=True),
    "jax_fit": _keras("jax"),
    "jax_fit_spe32": _keras("jax", steps_per_execution=32),
}
CONTENDERS = {
    "main": {**_PEERS, "jax_optax": ("jax", _jax_loops.train), "eager_loop": ("tensorflow", eager_loop),
             "trainer": ("tensorflow", trainer_train)},
    "epoch_calls": {**{name: _per_epoch(c) for name, c in _PEERS.items()},
                    "trainer": _per_epoch(("tensorflow", trainer_train))},
    "evaluate_predict": {
        **{name: _keras(backend, keras_evaluate_predict, **options) for name, (backend, options) in {
            "tf_fit": ("tensorflow", {}),
            "tf_fit_spe32": ("tensorflow", {"steps_per_execution": 32}),
            "tf_fit_spe32_xla": ("tensorflow", {"steps_per_execution": 32, "jit_compile": True}),
            "jax_fit": ("jax", {}),
            "jax_fit_spe32": ("jax", {"steps_per_execution": 32})}.items()},
        "jax_optax": ("jax", _jax_loops.evaluate_predict),
        "trainer": ("tensorflow", trainer_evaluate_predict)},
    "cnn": {
        "tf_fit_spe32": _keras("tensorflow", steps_per_execution=32, build=_models.cnn),
        "tf_fit_spe32_xla": _keras("tensorflow", steps_per_execution=32, jit_compile=True,
                                   build=_models.cnn),
        "jax_fit": _keras("jax", build=_models.cnn),
        "jax_fit_spe32": _keras("jax", steps_per_execution=32, build=_models.cnn),
        "jax_optax": ("jax", lambda settings: _jax_loops.train(settings, "cnn")),
        "trainer": ("tensorflow", lambda settings: trainer_train(settings, _models.cnn))},
}

if __name__ == "__main__":
    run_benchmark(pathlib.Path(__file__), __doc__.split("\n")[0], CONTENDERS, settings_for, RESULTS)
