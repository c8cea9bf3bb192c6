"""The engine's one door to Keras's and TensorFlow's private internals.

Every private attribute, method or module of Keras or TensorFlow that the engine uses
is reached through a function here, each saying why no public API does the job. Private
parts change without notice, so the installed versions are checked at import against
the ones the test suite ran on (`TESTED`, the bounds of `pyproject.toml`): another
version fails at once with a message saying what to install, never minutes into a run.
"""

import keras
import tensorflow as tf
from keras.src import backend as keras_backend
from keras.src.losses.losses import LossFunctionWrapper
from keras.src.trainers.data_adapters import array_slicing, data_adapter_utils, get_data_adapter

# (major, minor) versions the test suite ran on; pyproject.toml allows exactly these.
TESTED = {"keras": {(3, 15)}, "tensorflow": {(2, 21)}}


def _major_minor(version):
    return tuple(int(part) for part in version.split(".")[:2])


def check_versions(installed=None):
    """Raises ImportError if Keras or TensorFlow is not a version the tests ran on.

    Args:
        installed: `{"keras": version, "tensorflow": version}`. Defaults to the
            imported modules' `__version__`.
    """
    installed = installed or {"keras": keras.__version__, "tensorflow": tf.__version__}
    for name, version in installed.items():
        if _major_minor(version) not in TESTED[name]:
            tested = ", ".join(f"{a}.{b}" for a, b in sorted(TESTED[name]))
            raise ImportError(
                f"customkeras.training reaches private parts of {name} and was tested with "
                f"{name} {tested}; found {name} {version}. Install a tested version "
                f"(`pip install -e .` installs the bounds of customkeras's pyproject.toml).")


check_versions()

# ---- Keras's data conventions (no public API) ---------------------------------------------

# `fit`'s own adapters: tf.data, generators and PyDataset read as `fit` reads them.
data_adapter = get_data_adapter
# `fit(validation_split=...)`: the last fraction of the arrays, as Keras splits them.
train_validation_split = array_slicing.train_validation_split
# `fit(class_weight=...)` as sample weights, for sparse and one-hot labels.
class_weight_to_sample_weights = data_adapter_utils.class_weight_to_sample_weights
# `compile` wraps loss *functions* in this class: the same rank alignment of y_true /
# y_pred (labels (n,) vs predictions (n, 1)) for the label checks.
loss_function_wrapper = LossFunctionWrapper


def output_spec(model, x_spec, training=False):
    """The model's outputs for inputs of `x_spec`, computed symbolically (Keras's own
    tracing of `call` with KerasTensors; `Model.compute_output_spec` is not defined for
    every model class)."""
    symbolic = tf.nest.map_structure(lambda s: keras.KerasTensor(s.shape, s.dtype.name),
                                     x_spec)
    kwargs = {} if training is None else {"training": training}
    return keras_backend.compute_output_spec(model, symbolic, **kwargs)


# ---- Keras's model internals ----------------------------------------------------------------

def symbolic_build(model, element_spec):
    """Keras's symbolic build (`fit` does it): the layers, the compiled loss and metrics
    and the optimizer, from one batch's structure, with no eager call."""
    model._symbolic_build(data_batch=element_spec)


def call_has_training_arg(model):
    """Whether the model's `call` takes `training` (Keras passes it only then)."""
    return getattr(model, "_call_has_training_arg", True)


def compute_loss(model, x, y, y_pred, sample_weight, training):
    """`model.compute_loss`, through Keras's shim for overrides written before Keras
    3.3 added its `training` argument."""
    shim = getattr(model, "_compute_loss", None)
    if shim is None:
        return model.compute_loss(x, y, y_pred, sample_weight, training=training)
    return shim(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)


def has_compiled_loss(model):
    """Whether `compile` gave the model a loss (Keras keeps it in `_compile_loss`)."""
    return getattr(model, "_compile_loss", None) is not None


def compiled_loss_reductions(model):
    """The reductions of the compiled losses (their entries are built with the loss)."""
    entries = getattr(getattr(model, "_compile_loss", None), "_flat_losses", None) or []
    return {getattr(entry[1], "reduction", None) for entry in entries}


def loss_tracker(model):
    """The `Mean` metric that reports `loss` in the logs (None: not compiled)."""
    return getattr(model, "_loss_tracker", None)


def metrics_in_order(model, logs):
    """`evaluate(return_dict=False)`'s list: the logs in Keras's metric order."""
    return model._flatten_metrics_in_order(logs)


def inputs_struct(model):
    """The structure (e.g. a dict by name) a functional model was built on, or None."""
    return getattr(model, "_inputs_struct", None)


def optimizer_strategy(optimizer, default):
    """The strategy a Keras TensorFlow optimizer was created under (`default` if it
    does not say)."""
    return getattr(optimizer, "_distribution_strategy", default)


def initial_epoch(model):
    """Keras's convention: `BackupAndRestore` sets `model._initial_epoch` when it
    restores, and `fit` starts there (None: not set)."""
    return getattr(model, "_initial_epoch", None)


def set_initial_epoch(model, epoch):
    model._initial_epoch = epoch


# ---- keras.callbacks internals ---------------------------------------------------------------

def backup_metadata_path(callback):
    """Where a `BackupAndRestore` keeps its `training_metadata.json`."""
    return callback._training_metadata_path


def hook_backup_save(callback, make_saver):
    """Replaces a `BackupAndRestore`'s save with `make_saver(keras_save)` (its own save
    is the only point that knows a backup was written); `unhook_backup_save` undoes it."""
    callback._save_model = make_saver(type(callback)._save_model.__get__(callback))


def unhook_backup_save(callback):
    callback.__dict__.pop("_save_model", None)


def set_backup_epoch(callback, epoch):
    """Keeps a `BackupAndRestore`'s epoch current (it learns it only at epoch ends)."""
    callback._current_epoch = epoch


def tensorboard_traces(callback):
    """Whether a `TensorBoard` callback will still trace a profile or the graph."""
    return getattr(callback, "_should_trace", True)


def tensorboard_profile_ahead(callback):
    """Whether a `TensorBoard` callback's profile (`profile_batch`) is still to take or
    to finish. Its batch counter restarts at each `fit`'s `on_train_begin`; once past
    the range's end it does nothing per batch, so later epochs keep the fast path.
    Keras has no public state for it: its private counters, read with defaults that
    keep every batch if they move."""
    if not tensorboard_traces(callback):
        return False
    if getattr(callback, "_is_tracing", True):
        return True
    return getattr(callback, "_global_train_batch", 0) < getattr(callback, "_stop_batch", 1)


# ---- tf.data internals -----------------------------------------------------------------------

def dataset_inputs(dataset):
    """The datasets a tf.data transformation reads (its graph of Python classes)."""
    return dataset._inputs()


def dataset_batch_size(dataset):
    """A `batch` transformation's batch size tensor, or None."""
    return getattr(dataset, "_batch_size", None)
