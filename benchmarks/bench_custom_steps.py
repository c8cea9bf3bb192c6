"""A model's own `train_step` under `customkeras.training.Trainer` against Keras `fit`.

Workloads (Fashion-MNIST, batch 32; see `_models.py` for the models):

* custom_step  the Keras guide's custom `train_step` ("Customizing what happens in fit()
               with TensorFlow": a tape, `compute_loss`, `optimizer.apply`, the metrics
               loop) on exercise 13a's MLP as a `keras.Model` subclass, Nadam(1e-2),
               3 epochs;
* gan          the guide's GAN step (two optimizers set in an overridden `compile`, the
               discriminator then the generator trained in each step) on the book's
               Fashion-MNIST dense generator and discriminator, images only, 2 epochs.

Contenders, each in its own process: `fit` with its defaults, `fit` with
`steps_per_execution=32`, and `Trainer(model)` on the compiled model. Figures as in
bench_training.py: wall time from `compile` to the end of `fit`, steady steps/s (median
epoch after the first), peak RSS. Results: benchmarks/results/custom_steps.json.

Usage: python benchmarks/bench_custom_steps.py [--quick] [--rounds N] [--workload W ...]
                                              [--only CONTENDER ...] [--data-dir DIR]
"""

import pathlib

import _models
from _harness import BATCH_SIZE, RESULTS_DIR, load_data, run_benchmark
from bench_training import drive, keras_train, xla_reasons

RESULTS = RESULTS_DIR / "custom_steps.json"


def settings_for(workload, quick):
    settings = {"epochs": 3 if workload == "custom_step" else 2, "validation": False}
    if quick:
        settings.update(epochs=2, train_samples=1024, valid_samples=256, test_samples=512)
    return settings


def trainer_custom_step(settings):
    """`Trainer(model)` on the compiled guide model: the model's own step, in our loop."""
    from customkeras.training import Trainer

    (x_train, y_train), _, test = load_data(settings)
    model = _models.guide_model()
    _models.set_random_seed(settings["seed"])
    trainer = None

    def setup():
        nonlocal trainer
        model.compile(_models.nadam(), _models.LOSS, metrics=["accuracy"])
        trainer = Trainer(model)
        return lambda epochs, initial_epoch, callbacks: trainer.fit(
            x_train, y_train, epochs=epochs, initial_epoch=initial_epoch, batch_size=BATCH_SIZE,
            seed=settings["seed"], callbacks=callbacks, verbose=0)

    result = drive(setup, settings, len(x_train))
    result["test_accuracy"] = trainer.evaluate(*test, batch_size=BATCH_SIZE, verbose=0,
                                               return_dict=True)["accuracy"]
    return result


def fit_gan(settings, steps_per_execution=1, jit_compile="auto"):
    (x_train, _), _, _ = load_data(settings)
    model = _models.gan()
    _models.set_random_seed(settings["seed"])

    def setup():
        _models.compile_gan(model, steps_per_execution=steps_per_execution,
                            jit_compile=jit_compile)
        return lambda epochs, initial_epoch, callbacks: model.fit(
            x_train, epochs=epochs, initial_epoch=initial_epoch, batch_size=BATCH_SIZE,
            callbacks=callbacks, verbose=0)

    result = drive(setup, settings, len(x_train))
    result["jit_compile"] = bool(model.jit_compile)
    return result


def trainer_gan(settings):
    from customkeras.training import Trainer

    (x_train, _), _, _ = load_data(settings)
    model = _models.gan()
    _models.set_random_seed(settings["seed"])

    trainer = None

    def setup():
        nonlocal trainer
        _models.compile_gan(model)
        trainer = Trainer(model)
        return lambda epochs, initial_epoch, callbacks: trainer.fit(
            x_train, epochs=epochs, initial_epoch=initial_epoch, batch_size=BATCH_SIZE,
            seed=settings["seed"], callbacks=callbacks, verbose=0)

    result = drive(setup, settings, len(x_train))
    result["xla"] = xla_reasons(trainer)
    return result


CONTENDERS = {
    "custom_step": {
        "tf_fit": ("tensorflow", lambda s: keras_train(s, build=_models.guide_model)),
        "tf_fit_spe32": ("tensorflow", lambda s: keras_train(s, 32, build=_models.guide_model)),
        "trainer": ("tensorflow", trainer_custom_step),
    },
    "gan": {
        "tf_fit": ("tensorflow", fit_gan),
        "tf_fit_spe32": ("tensorflow", lambda s: fit_gan(s, 32)),
        "trainer": ("tensorflow", trainer_gan),
    },
}

if __name__ == "__main__":
    run_benchmark(pathlib.Path(__file__), __doc__.split("\n")[0], CONTENDERS, settings_for, RESULTS)
