"""Setting a model up for the Trainer: compiled, built, optimizers built.

`Trainer(model, loss, optimizer, ...)` compiles the model with those arguments, as a
user would before `fit` (`compile`'s names and conventions: history keys, metric
names, `loss_weights`, `weighted_metrics`, `LossScaleOptimizer` under `mixed_float16`);
`Trainer(model)` takes a compiled model as it is, or a model with its own
`train_step`. Building is symbolic (`KerasTensor`s), as Keras `fit` does it, so no
eager model call runs on the set-up path.
"""

import keras

from customkeras.training import compat
from customkeras.training.optimizer_groups import group_optimizer
from customkeras.training.steps import overrides


def compile_model(model, strategy, *, loss, optimizer, metrics, loss_weights,
                  weighted_metrics, run_eagerly):
    """Compiles a built `model` under `strategy.scope()` with the Trainer's arguments.

    `optimizer` may be per group (exercise 13b); see `group_optimizer`.
    """
    with strategy.scope():
        resolved = None if optimizer is None else group_optimizer(model, optimizer)
        model.compile(
            optimizer=resolved, loss=loss, loss_weights=loss_weights,
            metrics=_as_compile_argument(metrics),
            weighted_metrics=_as_compile_argument(weighted_metrics),
            run_eagerly=run_eagerly, jit_compile=False,
        )


def build(model, element_spec, strategy):
    """Builds the model, its compiled loss and metrics, and its optimizer.

    Args:
        model: the model.
        element_spec: the `TensorSpec` structure of one batch (`x`, `(x, y)` or
            `(x, y, sample_weight)`).
        strategy: the strategy whose scope the state is created in.
    """
    with strategy.scope():
        own_step = overrides(model, "train_step") or overrides(model, "test_step")
        _, y, _ = keras.utils.unpack_x_y_sample_weight(element_spec)
        if y is None and not own_step:
            # Prediction data: build the layers only; the compiled loss and metrics
            # are built with the first data that has targets.
            if not model.built:
                _build_layers(model, element_spec)
        elif getattr(model, "compiled", False) and not own_step:
            # Keras's own symbolic build: the layers, the compiled loss and metrics,
            # and the optimizer, from KerasTensors of one batch's structure.
            compat.symbolic_build(model, element_spec)
        elif getattr(model, "compiled", False) and strategy.num_replicas_in_sync > 1:
            # As Keras `fit` under a strategy: build what can be built symbolically
            # inside its scope. A model with its own step may have no `call` (a GAN)
            # or no targets (compiled metrics then fail with an AttributeError on
            # `None.shape`): the rest is built when its step is traced, in the scope.
            try:
                compat.symbolic_build(model, element_spec)
            except (RuntimeError, ValueError, TypeError, AttributeError):
                pass
        elif not model.built and not own_step:
            _build_layers(model, element_spec)
        # Only `model.optimizer` is built here, as `fit` does: a group optimizer builds
        # its groups, and a custom step's own optimizers build on their first
        # `apply` (while the loops are traced), each with the variables it updates.
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built and model.built:
            optimizer.build(model.trainable_variables)


def _build_layers(model, element_spec):
    x, _, _ = keras.utils.unpack_x_y_sample_weight(element_spec)
    compat.output_spec(model, x, training=None)


def _as_compile_argument(metrics):
    # `compile` takes a list, or a list / dict per output; a tuple means a list.
    if not metrics:
        return None
    return list(metrics) if isinstance(metrics, tuple) else metrics


def optimizers_of(model):
    """Every optimizer whose state a model's training changes, each once.

    `model.optimizer` (with the group optimizers of a `MultiOptimizer` and the inner
    optimizer of a `LossScaleOptimizer`), and optimizers held as attributes of the
    model, as a GAN sets them in its overridden `compile`.
    """
    found = []

    def add(optimizer):
        if isinstance(optimizer, keras.optimizers.Optimizer) and all(
                optimizer is not o for o in found):
            found.append(optimizer)
            for inner in getattr(optimizer, "optimizers", ()) or ():
                add(inner)
            add(getattr(optimizer, "inner_optimizer", None))

    add(getattr(model, "optimizer", None))
    for value in list(vars(model).values()):
        if isinstance(value, (list, tuple)):
            for item in value:
                add(item)
        else:
            add(value)
    return found
