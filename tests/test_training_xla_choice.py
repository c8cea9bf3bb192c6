"""`jit_compile="auto"`: when the Trainer's loops run XLA-compiled (`xla_choice`).

Speed is not asserted here: the choice is driven by recorded execution times, and the
tests make XLA executions *look* slower (their recorded seconds multiplied) to check
what the controller does with a measurement, on real training runs.
"""

import pytest
from data_source_helpers import assert_same_history, assert_same_weights, data, trainer_for
from training_helpers import mlp

from customkeras.training import xla_choice
from customkeras.training.loops import Loops

X, Y, W = data(4096)  # 128 batches of 32


@pytest.fixture
def calls(monkeypatch):
    """The `(num_steps, jit_compile)` of every training-loop call, in order."""
    made = []
    train_arrays = Loops.train_arrays

    def recorded(self, data, order, first_step, num_steps, batch_size, jit_compile):
        made.append((int(num_steps), bool(jit_compile)))
        return train_arrays(self, data, order, first_step, num_steps, batch_size, jit_compile)

    monkeypatch.setattr(Loops, "train_arrays", recorded)
    return made


def _slow_xla(monkeypatch, factor):
    timed = xla_choice.XlaChoice.timed
    monkeypatch.setattr(xla_choice.XlaChoice, "timed",
                        lambda self, kind, xla, steps, seconds, traced=None: timed(
                            self, kind, xla, steps, seconds * (factor if xla else 1), traced))


def test_auto_compiles_a_call_as_long_as_the_threshold_and_not_a_shorter_one(calls):
    assert xla_choice.XLA_MIN_STEPS <= 1719  # one epoch of the chapter's Fashion-MNIST
    trainer = trainer_for(mlp(seed=1), steps_per_execution=32)
    trainer.fit(X, Y, epochs=1, verbose=0)  # 128 steps: not worth a compilation
    assert not any(xla for _, xla in calls)
    calls.clear()
    epochs = -(-xla_choice.XLA_MIN_STEPS // 128)
    trainer.fit(X, Y, epochs=epochs, verbose=0)  # with the steps before: past the threshold
    assert all(xla for _, xla in calls)


def test_xla_measured_slower_is_dropped_within_the_pass(monkeypatch, calls):
    monkeypatch.setattr(xla_choice, "XLA_MIN_STEPS", 1)
    monkeypatch.setattr(xla_choice, "XLA_CHECK_SECONDS", 0.0)
    _slow_xla(monkeypatch, factor=1000.0)
    model = mlp(seed=1)
    history = trainer_for(model, steps_per_execution=32).fit(X, Y, epochs=2, verbose=0,
                                                             shuffle=False)
    # Compile, one timed XLA execution, then plain probes of 8 steps (the first traces)
    # beside XLA; once the probe has a time, XLA is dropped for the rest of the epoch.
    kinds = [xla for _, xla in calls]
    assert kinds[:2] == [True, True], calls
    assert (8, False) in calls[2:5], calls
    dropped_at = max(i for i, (_, xla) in enumerate(calls) if xla) + 1
    assert sum(n for n, _ in calls[:dropped_at]) < 128, f"XLA ran into the next epoch: {calls}"
    assert not any(xla for _, xla in calls[dropped_at:])
    # The mixture of loops changed nothing but speed.
    reference = mlp(seed=1)
    expected = trainer_for(reference, jit_compile=False).fit(X, Y, epochs=2, verbose=0,
                                                             shuffle=False)
    assert_same_history(history, expected, "XLA then plain vs plain")
    assert_same_weights(model, reference, "XLA then plain vs plain")


def test_xla_measured_faster_is_kept(monkeypatch, calls):
    monkeypatch.setattr(xla_choice, "XLA_MIN_STEPS", 1)
    monkeypatch.setattr(xla_choice, "XLA_CHECK_SECONDS", 0.0)
    _slow_xla(monkeypatch, factor=0.001)
    trainer_for(mlp(seed=1), steps_per_execution=32).fit(X, Y, epochs=2, verbose=0)
    plain = [n for n, xla in calls if not xla]
    assert plain == [8, 8], calls  # the two probes, then XLA throughout
