"""Checks for running the Trainer under a `tf.distribute.Strategy`.

The per-replica work itself (each replica's slice of the global batch, its share of
the global loss) lives in `steps`; these are the host-side rules around it.
"""

import tensorflow as tf


def is_distributed(strategy):
    """Whether `strategy` is a real distribution strategy (not TF's default one).

    Also true when the Trainer is created inside some strategy's scope.
    """
    return tf.distribute.has_strategy() or strategy is not tf.distribute.get_strategy()


def check_created_in_scope(model, optimizer, strategy):
    """Raises `ValueError` unless the model and optimizers belong to `strategy`.

    Keras requires both to be created inside `strategy.scope()`; otherwise the run
    fails deep inside the first step with an obscure message.

    Args:
        model: the built model.
        optimizer: the optimizer, or a `MultiOptimizer` with `.optimizers`.
        strategy: the `tf.distribute.Strategy` the Trainer runs under.
    """
    outside = [
        v.path for v in model.variables
        if not isinstance(v.value, tf.distribute.DistributedValues)
    ]
    optimizers = getattr(optimizer, "optimizers", [optimizer])
    # Keras's TensorFlow optimizers remember the strategy they were created under.
    foreign = [
        o.name for o in optimizers
        if getattr(o, "_distribution_strategy", strategy) is not strategy
    ]
    if outside or foreign:
        raise ValueError(
            "with `strategy`, create the model and its optimizers inside "
            "`with strategy.scope():`; created outside it: "
            f"variables {outside[:5]}{'...' if len(outside) > 5 else ''}, "
            f"optimizers {foreign}"
        )
