"""The chapter's experiments as named, reusable builders.

Exercise 13 trains an MLP on Fashion-MNIST (13a with one optimizer, 13b with one optimizer
for the lower layers and another for the upper layers); the California-housing sections
train small regressors with the chapter's custom losses, metrics, layers and models. The
``customkeras`` command line builds its runs from these functions, and they work the same
from Python:

>>> import keras
>>> from customkeras import experiments, training
>>> keras.utils.set_random_seed(42)
>>> model = experiments.build_fashion_mlp()
>>> trainer = training.Trainer(model, experiments.build_loss("fashion-mnist"),
...                            experiments.build_optimizer("nadam", 1e-2),
...                            experiments.build_metrics("fashion-mnist"))
"""

from __future__ import annotations  # annotations name Keras and NumPy types, unimported

import dataclasses
import importlib
from collections.abc import Callable, Sequence

from customkeras import _checks

# Keras, NumPy and the components are imported by the functions that use them, not here:
# the `customkeras` command checks names and defaults from this module (its options,
# `--help`, usage errors) without starting TensorFlow.


def _import(name: str):
    """`keras`, `numpy` or a customkeras part (`"layers"`, ...), imported on first use."""
    import customkeras

    customkeras._import_all()  # TensorFlow quietly first, every component registered
    return importlib.import_module(name if name in ("keras", "numpy") else f"customkeras.{name}")


def _keras_optimizer(class_name: str) -> Callable:
    def build(learning_rate):
        return getattr(_import("keras").optimizers, class_name)(learning_rate=learning_rate)

    build.__name__ = build.__qualname__ = class_name
    return build


def _momentum_sgd(learning_rate):
    return _import("optimizers").MomentumSGD(learning_rate, momentum=0.9)

FASHION_MNIST = "fashion-mnist"
HOUSING = "housing"
DATASETS = (FASHION_MNIST, HOUSING)

FASHION_MODELS = ("mlp",)

# Keras's built-in optimizers by the names users type, plus the chapter's custom one.
# Each value builds the optimizer from `learning_rate=`.
OPTIMIZERS = {
    "sgd": _keras_optimizer("SGD"),
    "momentum-sgd": _momentum_sgd,
    "adam": _keras_optimizer("Adam"),
    "nadam": _keras_optimizer("Nadam"),
    "rmsprop": _keras_optimizer("RMSprop"),
    "adagrad": _keras_optimizer("Adagrad"),
}

HOUSING_LOSSES = ("mse", "huber")
HOUSING_METRICS = ("mae", "mse", "rmse", "huber")
FASHION_LOSS = "sparse_categorical_crossentropy"
FASHION_METRICS = ("accuracy",)

# Exercise 13b's optimizers, used for whichever side the user leaves unspecified.
LOWER_DEFAULTS = ("sgd", 1e-4)
UPPER_DEFAULTS = ("nadam", 1e-3)


def _dense_relu(units: int) -> keras.layers.Dense:
    keras = _import("keras")
    return keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal")


def build_fashion_mlp() -> keras.Sequential:
    """Exercise 13a's model: Flatten -> Dense(100, relu) -> Dense(10, softmax).

    Returns:
        An uncompiled, built `keras.Sequential` for 28x28 images.
    """
    keras = _import("keras")
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="fashion_mlp",
    )


def build_fashion_split_mlp() -> tuple[keras.Sequential, keras.Sequential, keras.Sequential]:
    """Exercise 13b's model: the same MLP as two sub-models, one per optimizer.

    Returns:
        `(model, lower_layers, upper_layers)`: `model` chains `lower_layers`
        (Flatten -> Dense(100, relu)) and `upper_layers` (Dense(10, softmax)).
    """
    keras = _import("keras")
    lower = keras.Sequential(
        [keras.Input(shape=(28, 28)), keras.layers.Flatten(),
         keras.layers.Dense(100, activation="relu")],
        name="lower_layers",
    )
    upper = keras.Sequential(
        [keras.Input(shape=(100,)), keras.layers.Dense(10, activation="softmax")],
        name="upper_layers",
    )
    model = keras.Sequential([keras.Input(shape=(28, 28)), lower, upper], name="fashion_mlp_split")
    return model, lower, upper


@dataclasses.dataclass(frozen=True)
class HousingModel:
    """A California-housing regressor from the chapter and its default optimizer."""

    description: str
    build: Callable[[], keras.Model]
    optimizer: str = "nadam"
    learning_rate: float = 1e-3


def _regressor(*stack: keras.layers.Layer) -> keras.Sequential:
    keras = _import("keras")
    return keras.Sequential([keras.Input(shape=(8,)), *stack])


def _dense(units: int):
    return _import("keras").layers.Dense(units)


HOUSING_MODELS = {
    "mlp": HousingModel(
        "Dense(30, relu) -> Dense(1), the chapter's basic regressor",
        lambda: _regressor(_dense_relu(30), _dense(1)),
    ),
    "residual": HousingModel(
        "customkeras.models.ResidualRegressor(1) (residual blocks)",
        lambda: _import("models").ResidualRegressor(1),
    ),
    "reconstructing": HousingModel(
        "customkeras.models.ReconstructingRegressor(1): loss from model internals",
        lambda: _import("models").ReconstructingRegressor(1, reconstruction_weight=0.05),
    ),
    "wide-deep": HousingModel(
        "customkeras.models.WideAndDeepRegressor(1): input concatenated with the deep path",
        lambda: _import("models").WideAndDeepRegressor(output_dim=1),
    ),
    "simple-dense": HousingModel(
        "SimpleDense(30, relu) -> SimpleDense(1), the chapter's MyDense",
        lambda: _regressor(_import("layers").SimpleDense(30, activation="relu"),
                           _import("layers").SimpleDense(1)),
    ),
    "gaussian-noise": HousingModel(
        "GaussianNoise(1.0) -> Dense(30, relu) -> Dense(1): noise only in training",
        lambda: _regressor(_import("layers").GaussianNoise(1.0), _dense_relu(30), _dense(1)),
    ),
    # The chapter trains this one with plain SGD (learning rate 0.01).
    "exponential": HousingModel(
        "Dense(30, relu) -> Dense(1) -> Exponential: positive outputs",
        lambda: _regressor(
            _import("keras").layers.Dense(30, activation="relu"), _dense(1),
            _import("layers").Exponential()
        ),
        optimizer="sgd",
        learning_rate=1e-2,
    ),
}


def build_housing_model(name: str, n_features: int = 8) -> keras.Model:
    """Builds one of `HOUSING_MODELS` and its weights for `n_features` inputs.

    Args:
        name: a key of `HOUSING_MODELS`, e.g. `"residual"`.
        n_features: number of input features. Defaults to 8 (scikit-learn's set).

    Returns:
        A built, uncompiled `keras.Model` with one output.
    """
    _checks.one_of("name", name, tuple(HOUSING_MODELS))
    _checks.one_of("n_features", n_features, (8,))  # the housing features
    model = HOUSING_MODELS[name].build()
    # Subclassed models create their weights on first call; checkpoints need them now.
    model(_import("numpy").zeros((1, n_features), dtype="float32"))
    return model


def build_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name (a key of `OPTIMIZERS`) and learning rate."""
    _checks.one_of("name", name, tuple(OPTIMIZERS))
    learning_rate = _checks.positive_float("learning_rate", learning_rate)
    return OPTIMIZERS[name](learning_rate=learning_rate)


def build_loss(dataset: str, name: str | None = None, threshold: float = 1.0):
    """The training loss of `dataset`.

    Args:
        dataset: `"fashion-mnist"` (sparse categorical cross-entropy) or `"housing"`.
        name: for housing, `"mse"` or `"huber"` (`customkeras.losses.HuberLoss`).
            Defaults to the dataset's loss.
        threshold: the Huber threshold. Defaults to 1.0.
    """
    _checks.one_of("dataset", dataset, DATASETS)
    keras = _import("keras")
    if dataset == FASHION_MNIST:
        _checks.one_of("name", name, (None, FASHION_LOSS))
        return keras.losses.SparseCategoricalCrossentropy()
    _checks.one_of("name", name, (None, *HOUSING_LOSSES))
    if name == "huber":
        return _import("losses").HuberLoss(threshold)
    return keras.losses.MeanSquaredError()


def build_metrics(dataset: str, names: Sequence[str] = (), threshold: float = 1.0) -> list:
    """Fresh metric objects, named as they appear in histories (`val_<name>`, `test_<name>`).

    Args:
        dataset: `"fashion-mnist"` (always `accuracy`) or `"housing"`.
        names: for housing, any of `HOUSING_METRICS`; `huber` is
            `customkeras.metrics.HuberMetric(threshold)`. Defaults to none.
        threshold: the Huber metric's threshold. Defaults to 1.0.
    """
    _checks.one_of("dataset", dataset, DATASETS)
    keras = _import("keras")
    if dataset == FASHION_MNIST:
        for name in names:
            _checks.one_of("names", name, FASHION_METRICS)
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    factories = {
        "mae": lambda: keras.metrics.MeanAbsoluteError(name="mae"),
        "mse": lambda: keras.metrics.MeanSquaredError(name="mse"),
        "rmse": lambda: keras.metrics.RootMeanSquaredError(name="rmse"),
        "huber": lambda: _import("metrics").HuberMetric(threshold, name="huber"),
    }
    built = []
    for name in names:
        _checks.one_of("names", name, HOUSING_METRICS)
        built.append(factories[name]())
    return built


@dataclasses.dataclass(frozen=True)
class Splits:
    """Training, validation and test arrays of one dataset."""

    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def load_splits(dataset: str, data_dir: str | None = None,
                max_train_samples: int | None = None) -> Splits:
    """Loads `dataset` with the chapter's splits, optionally truncating the training set.

    Args:
        dataset: `"fashion-mnist"` or `"housing"`.
        data_dir: directory holding the data, or `None` to use `CUSTOMKERAS_DATA_DIR`,
            the usual caches and downloads. Defaults to `None`.
        max_train_samples: keep only the first N training samples (quick runs), or
            `None` for all. Validation and test sets are never truncated.

    Raises:
        customkeras.datasets.DatasetError: the data is missing or corrupt; the message
            says which directory or variable to set.
    """
    _checks.one_of("dataset", dataset, DATASETS)
    if max_train_samples is not None:
        max_train_samples = _checks.positive_int("max_train_samples", max_train_samples)
    datasets = _import("datasets")
    if dataset == FASHION_MNIST:
        train, valid, test = datasets.load_fashion_mnist(data_dir)
    else:
        train, valid, test = datasets.load_california_housing(data_dir, scale=True)
    if max_train_samples is not None:
        train = (train[0][:max_train_samples], train[1][:max_train_samples])
    return Splits(train=train, valid=valid, test=test)


@dataclasses.dataclass
class Experiment:
    """What a `Trainer` needs for one run: the model, loss, optimizer(s) and metrics.

    `optimizer` is one optimizer, or for exercise 13b a dict from each layer group
    (a sub-model) to its optimizer, as `customkeras.training.Trainer` accepts it.
    """

    model: keras.Model
    loss: object
    optimizer: object
    metrics: list


def build_experiment(dataset: str, model: str = "mlp", *, optimizer: str | None = None,
                     lr: float | None = None, lower_optimizer: str | None = None,
                     lower_lr: float | None = None, upper_optimizer: str | None = None,
                     upper_lr: float | None = None, loss: str | None = None,
                     threshold: float | None = None, metrics: Sequence[str] = ()) -> Experiment:
    """Builds a fresh model, loss, optimizer(s) and metrics for one of the experiments.

    Seed first (`keras.utils.set_random_seed`) for reproducible initial weights.

    Args:
        dataset: `"fashion-mnist"` or `"housing"`.
        model: `"mlp"` for Fashion-MNIST; a key of `HOUSING_MODELS` for housing.
            Defaults to `"mlp"`.
        optimizer: optimizer name (a key of `OPTIMIZERS`) when there is one optimizer.
        lr: its learning rate.
        lower_optimizer: exercise 13b: the lower layers' optimizer name. Giving it
            splits the Fashion-MNIST MLP into lower and upper layer groups.
        lower_lr: the lower layers' learning rate.
        upper_optimizer: the upper layers' optimizer name.
        upper_lr: the upper layers' learning rate.
        loss: housing loss, `"mse"` or `"huber"`. Defaults to the dataset's loss.
        threshold: Huber threshold for the loss and the `huber` metric. Defaults to 1.0.
        metrics: metric names (see `build_metrics`). Defaults to the dataset's.

    Example:
    >>> experiment = build_experiment("fashion-mnist", lower_optimizer="sgd",
    ...     lower_lr=1e-4, upper_optimizer="nadam", upper_lr=1e-3)
    """
    threshold = 1.0 if threshold is None else threshold
    _checks.one_of("dataset", dataset, DATASETS)
    if dataset == FASHION_MNIST:
        _checks.one_of("model", model, FASHION_MODELS)
        if lower_optimizer is not None:
            net, lower, upper = build_fashion_split_mlp()
            groups = {lower: build_optimizer(lower_optimizer, lower_lr),
                      upper: build_optimizer(upper_optimizer, upper_lr)}
            return Experiment(net, build_loss(dataset, loss), groups, build_metrics(dataset))
        net = build_fashion_mlp()
    else:
        net = build_housing_model(model)
    return Experiment(net, build_loss(dataset, loss, threshold),
                      build_optimizer(optimizer, lr), build_metrics(dataset, metrics, threshold))
