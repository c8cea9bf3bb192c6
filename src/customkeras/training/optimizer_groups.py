"""Per-group optimizers: different optimizers for different parts of a model.

Exercise 13b of the chapter trains the lower layers with `SGD(1e-4)` and the upper
layers with `Nadam(1e-3)`. Keras already has the machinery to dispatch gradients by
variable (`keras.optimizers.MultiOptimizer`), but it selects variables by path
regexes; here the groups are given as layers, sub-models or variables, like Optax's
`partition`, and every trainable variable must fall in exactly one group.
"""

from collections.abc import Mapping

import keras


def group_optimizer(model, optimizer):
    """Returns one Keras optimizer for `model`, built from one or several optimizers.

    Args:
        model: a built Keras model; its trainable variables are the ones to partition.
        optimizer: a Keras optimizer (or its name, e.g. `"nadam"`), or the groups:
            either a mapping from a layer, a sub-model, a variable, or a tuple of them
            to an optimizer, or a list of `(layers, optimizer)` pairs where `layers`
            is one layer or a list/tuple of layers (a dict cannot have a list as a
            key). Every trainable variable of the model must belong to exactly one
            group.

    Returns:
        The optimizer itself, or a `keras.optimizers.MultiOptimizer` whose
        `.optimizers` lists the group optimizers (Keras callbacks such as
        `LearningRateScheduler` and `TensorBoard` walk that list).

    Raises:
        ValueError: for a malformed specification, a variable in no group, a variable
            in several groups, or a variable that is not a trainable variable of the
            model.

    Example:

    ```python
    optimizer = group_optimizer(model, {lower_layers: keras.optimizers.SGD(1e-4),
                                        upper_layers: keras.optimizers.Nadam(1e-3)})
    ```
    """
    if isinstance(optimizer, (str, keras.optimizers.Optimizer)):
        return _as_optimizer(optimizer, "optimizer")
    groups = _group_pairs(optimizer)
    variables = _partition(model, groups)
    if len({id(opt) for _, opt in groups}) == 1:
        return groups[0][1]
    # Exact variable paths as keys: OptimizerMap tries an exact match first, and the
    # map stays serializable (a callable selector would not be), so ModelCheckpoint
    # can still save the model.
    optimizer_map = keras.optimizers.OptimizerMap(
        default_optimizer=groups[0][1],
        optimizer_map={variable.path: opt for variable, opt in variables},
    )
    return keras.optimizers.MultiOptimizer(optimizer_map, name="group_optimizer")


def _as_optimizer(value, where):
    if isinstance(value, str):
        try:
            return keras.optimizers.get(value)
        except ValueError as error:
            raise ValueError(
                f"`{where}` must be a Keras optimizer or its name; received {value!r} "
                f"({error})"
            ) from None
    if isinstance(value, keras.optimizers.MultiOptimizer) or not isinstance(
        value, keras.optimizers.Optimizer
    ):
        raise ValueError(
            f"`{where}` must be a Keras optimizer (not a MultiOptimizer); received "
            f"{value!r}"
        )
    return value


def _group_pairs(spec):
    """Normalizes a mapping or a list of pairs into `[(members, optimizer), ...]`."""
    if isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif isinstance(spec, (list, tuple)) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in spec
    ):
        pairs = [tuple(pair) for pair in spec]
    else:
        raise ValueError(
            "`optimizer` must be a Keras optimizer, a mapping {layers: optimizer}, or "
            f"a list of (layers, optimizer) pairs; received {spec!r}"
        )
    if not pairs:
        raise ValueError("`optimizer` groups must not be empty; received no group")
    groups = []
    for index, (members, opt) in enumerate(pairs):
        members = list(members) if isinstance(members, (list, tuple)) else [members]
        for member in members:
            if not isinstance(member, (keras.layers.Layer, keras.Variable)):
                raise ValueError(
                    f"`optimizer` group {index} must name layers, sub-models or "
                    f"variables; received {member!r}"
                )
        groups.append((members, _as_optimizer(opt, f"optimizer group {index}")))
    return groups


def _partition(model, groups):
    """Returns `[(variable, optimizer)]` covering each trainable variable once."""
    trainable = {id(v): v for v in model.trainable_variables}
    owner = {}  # id(variable) -> index of the group that claims it
    duplicated, foreign = [], []
    for index, (members, _) in enumerate(groups):
        claimed = {}
        for member in members:
            member_variables = (
                [member] if isinstance(member, keras.Variable)
                else member.trainable_variables
            )
            claimed.update((id(v), v) for v in member_variables)
        for key, variable in claimed.items():
            if key not in trainable:
                foreign.append(variable.path)
            elif key in owner:
                duplicated.append(f"{variable.path} (groups {owner[key]} and {index})")
            else:
                owner[key] = index
    missing = [v.path for key, v in trainable.items() if key not in owner]
    problems = []
    if missing:
        problems.append(f"in no group: {missing}")
    if duplicated:
        problems.append(f"in more than one group: {duplicated}")
    if foreign:
        problems.append(f"not trainable variables of the model: {foreign}")
    if problems:
        raise ValueError(
            "`optimizer` groups must cover every trainable variable of the model "
            "exactly once; variables " + "; ".join(problems)
        )
    paths = [v.path for v in trainable.values()]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ValueError(
            "group optimizers map variables by path, but these paths are shared by "
            f"several variables: {repeated}; give the layers unique names"
        )
    return [(v, groups[owner[key]][1]) for key, v in trainable.items()]
