"""The hand-written JAX + optax contender: what a JAX user writes instead of `fit`.

The data lives on the device; for the MLP one `jax.jit` function runs a whole epoch: the
epoch's permutation, a `lax.fori_loop` over its full batches (gathered in-graph), the
smaller last batch, and the running loss and accuracy (for the CNN, see `build`). The models are those of `_models.py`
(same layers, Glorot-uniform kernels and zero biases, softmax outputs with Keras's
clipped cross-entropy), with `optax.nadam(1e-2)` (epsilon 1e-7 as Keras; optax's Nadam
has no momentum-decay schedule, Keras's has one: a difference in arithmetic, not speed).
Evaluation and prediction run batches of 32 with `lax.map` over a zero-padded set.
"""

import time

import numpy as np

from _harness import BATCH_SIZE, LEARNING_RATE, SEED, load_data, steps_per_epoch, training_figures


def _glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def mlp_init(rng):
    return {"dense1": {"kernel": _glorot(rng, (784, 100), 784, 100), "bias": np.zeros(100, np.float32)},
            "dense2": {"kernel": _glorot(rng, (100, 10), 100, 10), "bias": np.zeros(10, np.float32)}}


def mlp_apply(params, x):
    import jax

    h = x.reshape(x.shape[0], -1)
    h = jax.nn.relu(h @ params["dense1"]["kernel"] + params["dense1"]["bias"])
    return jax.nn.softmax(h @ params["dense2"]["kernel"] + params["dense2"]["bias"])


def cnn_init(rng):
    return {"conv1": {"kernel": _glorot(rng, (3, 3, 1, 32), 9, 9 * 32), "bias": np.zeros(32, np.float32)},
            "conv2": {"kernel": _glorot(rng, (3, 3, 32, 64), 9 * 32, 9 * 64),
                      "bias": np.zeros(64, np.float32)},
            "dense": {"kernel": _glorot(rng, (1600, 10), 1600, 10), "bias": np.zeros(10, np.float32)}}


def cnn_apply(params, x):
    import jax
    from jax import lax

    def conv_pool(h, layer):
        h = lax.conv_general_dilated(h, layer["kernel"], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h + layer["bias"])
        return lax.reduce_window(h, -np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    h = conv_pool(conv_pool(x[..., None], params["conv1"]), params["conv2"])
    h = h.reshape(h.shape[0], -1)
    return jax.nn.softmax(h @ params["dense"]["kernel"] + params["dense"]["bias"])


MODELS = {"mlp": (mlp_init, mlp_apply), "cnn": (cnn_init, cnn_apply)}


def _loss_and_hits(apply, params, x, y, weight):
    import jax.numpy as jnp

    probabilities = jnp.clip(apply(params, x), 1e-7, 1 - 1e-7)  # as Keras's cross-entropy
    losses = -jnp.log(jnp.take_along_axis(probabilities, y[:, None], axis=1)[:, 0])
    hits = (jnp.argmax(probabilities, axis=1) == y).astype(jnp.float32)
    return jnp.sum(losses * weight) / jnp.sum(weight), (jnp.sum(losses * weight),
                                                        jnp.sum(hits * weight))


def build(model):
    """Jitted `(train_epoch, evaluate, predict)` functions and initial `(params, opt_state)`."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    init, apply = MODELS[model]
    optimizer = optax.nadam(LEARNING_RATE, eps=1e-7)
    params = jax.tree_util.tree_map(jnp.asarray, init(np.random.default_rng(SEED)))
    opt_state = optimizer.init(params)
    grad = jax.value_and_grad(lambda *a: _loss_and_hits(apply, *a), argnums=0, has_aux=True)

    def step(carry, x, y):
        params, opt_state, loss_sum, hit_sum = carry
        (_, (losses, hits)), grads = grad(params, x, y, jnp.ones(x.shape[0], jnp.float32))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss_sum + losses, hit_sum + hits

    def batch_step(carry, x, y, order, i):
        index = lax.dynamic_slice(order, (i * BATCH_SIZE,), (BATCH_SIZE,))
        return step(carry, x[index], y[index])

    def last_step(carry, x, y, order):
        full = x.shape[0] // BATCH_SIZE * BATCH_SIZE
        if full < x.shape[0]:
            carry = step(carry, x[order[full:]], y[order[full:]])
        params, opt_state, loss_sum, hit_sum = carry
        return params, opt_state, loss_sum / x.shape[0], hit_sum / x.shape[0]

    @jax.jit
    def fori_epoch(params, opt_state, x, y, key):
        order = jax.random.permutation(key, x.shape[0])
        carry = lax.fori_loop(0, x.shape[0] // BATCH_SIZE,
                              lambda i, carry: batch_step(carry, x, y, order, i),
                              (params, opt_state, 0.0, 0.0))
        return last_step(carry, x, y, order)

    # XLA:CPU runs convolutions inside a while loop (`fori_loop`, `scan`) ~5x slower than
    # the same step jitted alone (measured here on the CNN), so the CNN's loop is a Python
    # loop over a jitted step (asynchronous dispatch, batches gathered on the device).
    permutation = jax.jit(jax.random.permutation, static_argnums=1)
    jitted_batch_step, jitted_last_step = jax.jit(batch_step), jax.jit(last_step)

    def per_step_epoch(params, opt_state, x, y, key):
        order = permutation(key, x.shape[0])
        carry = (params, opt_state, 0.0, 0.0)
        for i in range(x.shape[0] // BATCH_SIZE):
            carry = jitted_batch_step(carry, x, y, order, i)
        return jitted_last_step(carry, x, y, order)

    train_epoch = per_step_epoch if model == "cnn" else fori_epoch

    def batched(x, *others):
        pad = -len(x) % BATCH_SIZE
        weight = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
        arrays = [np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)]) for a in (x,) + others]
        return [jnp.asarray(a.reshape((-1, BATCH_SIZE) + a.shape[1:])) for a in arrays + [weight]]

    @jax.jit
    def _evaluate(params, xs, ys, weights):
        sums = lax.map(lambda b: _loss_and_hits(apply, params, *b)[1], (xs, ys, weights))
        total = jnp.sum(weights)
        return jnp.sum(sums[0]) / total, jnp.sum(sums[1]) / total

    @jax.jit
    def _predict(params, xs):
        return lax.map(lambda b: apply(params, b), xs).reshape(-1, 10)

    def evaluate(params, x, y):
        loss, accuracy = _evaluate(params, *batched(x, y))
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def predict(params, x):
        return np.asarray(_predict(params, batched(x)[0]))[:len(x)]

    return train_epoch, evaluate, predict, params, opt_state


def train(settings, model="mlp"):
    """The workload's epochs, timed as the Keras contenders are (validation included)."""
    import jax

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = load_data(settings, False)
    start = time.perf_counter()
    train_epoch, evaluate, _, params, opt_state = build(model)
    x, y = jax.device_put(x_train), jax.device_put(y_train.astype(np.int32))
    key = jax.random.key(settings["seed"])
    epoch_seconds = []
    for epoch in range(settings["epochs"]):
        epoch_start = time.perf_counter()
        params, opt_state, loss, _ = train_epoch(params, opt_state, x, y,
                                                 jax.random.fold_in(key, epoch))
        float(loss)  # waits for the epoch, as fit's logs do
        if settings.get("validation"):
            evaluate(params, x_valid, y_valid.astype(np.int32))
        epoch_seconds.append(time.perf_counter() - epoch_start)
    wall = time.perf_counter() - start
    result = training_figures(wall, epoch_seconds, steps_per_epoch(len(x_train)))
    result["test_accuracy"] = evaluate(params, x_test, y_test.astype(np.int32))["accuracy"]
    return result


def evaluate_predict(settings):
    """First and best later `evaluate` / `predict` calls on the test set."""
    import jax

    _, (_, _), (x_test, y_test) = load_data(settings, False)
    start = time.perf_counter()
    _, evaluate, predict, params, _ = build("mlp")
    setup = time.perf_counter() - start
    y_test = y_test.astype(np.int32)
    result = {}
    for name, call in (("evaluate", lambda: evaluate(params, x_test, y_test)),
                       ("predict", lambda: predict(params, x_test))):
        seconds = []
        for _ in range(settings["repeats"]):
            call_start = time.perf_counter()
            jax.block_until_ready(call())
            seconds.append(time.perf_counter() - call_start)
        result[name] = call_figures(seconds, len(x_test), setup if name == "evaluate" else 0.0)
    return result


def call_figures(seconds, n_samples, setup_seconds=0.0):
    """First call (set-up included) and steady (best later call) times of evaluate/predict."""
    steady = min(seconds[1:] or seconds)
    return {"first_call_seconds": setup_seconds + seconds[0], "steady_seconds": steady,
            "steady_samples_per_s": n_samples / steady}
