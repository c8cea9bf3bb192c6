"""`keras.callbacks.TensorBoard(profile_batch=...)` under the Trainer: a profile that
TensorBoard's profile plugin opens, of the batches asked for, naming the step's ops."""

import keras
import numpy as np
import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from customkeras.training import Trainer

pytest.importorskip("tensorboard")

N_SAMPLES, BATCH = 640, 32  # 20 steps per epoch


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((12,)),
                             keras.layers.Dense(16, activation="relu", name="hidden"),
                             keras.layers.Dense(3, name="logits")])


def _data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(N_SAMPLES, 12)).astype("float32"),
            rng.integers(0, 3, N_SAMPLES))


def _profile(log_dir):
    """The one profile under `log_dir`, where TensorBoard's profile plugin looks for it
    (`<run>/plugins/profile/<session>/<host>.xplane.pb`), parsed."""
    files = sorted(log_dir.glob("*/plugins/profile/*/*.xplane.pb"))
    assert len(files) == 1, f"expected one profile under {log_dir}, found {files}"
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[0].read_bytes())
    return files[0], space


def _events(space):
    """`(name, {stat: value})` of every event on the profile's host-thread planes."""
    events = []
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                stats = {plane.stat_metadata[stat.metadata_id].name: stat.int64_value
                         for stat in event.stats}
                events.append((plane.event_metadata[event.metadata_id].name, stats))
    return events


def _profiled_steps(space):
    """The step numbers Keras's callback marked ("Profiled batch" trace events)."""
    return sorted(stats.get("step_num") for name, stats in _events(space)
                  if name == "Profiled batch")


def _fit_profiled(log_dir, fit_with="trainer", jit_compile=False, epochs=1, callbacks=(),
                  steps_per_execution="auto"):
    x, y = _data()
    model = _model()
    board = keras.callbacks.TensorBoard(str(log_dir), profile_batch=(3, 5), write_graph=False)
    if fit_with == "keras":
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                      jit_compile=jit_compile,
                      steps_per_execution=1 if steps_per_execution == "auto"
                      else steps_per_execution)
        model.fit(x, y, batch_size=BATCH, epochs=epochs, callbacks=[board, *callbacks],
                  shuffle=False, verbose=0)
    else:
        trainer = Trainer(model, "sparse_categorical_crossentropy", "sgd",
                          jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        trainer.fit(x, y, batch_size=BATCH, epochs=epochs, callbacks=[board, *callbacks],
                    shuffle=False, verbose=0, seed=0)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["plain", "xla"])
def test_profile_of_the_asked_batches_names_the_steps_ops(tmp_path, jit_compile):
    _fit_profiled(tmp_path, jit_compile=jit_compile)
    path, space = _profile(tmp_path)
    assert path.relative_to(tmp_path).parts[:3] == ("train", "plugins", "profile")
    # Batches 3 to 5 (1-based, as Keras counts them) are steps 2, 3 and 4.
    assert _profiled_steps(space) == [2, 3, 4]
    names = {name for name, _ in _events(space)}
    if jit_compile:
        # XLA's executable runs fused ops ("...dot_fusion"); the TensorFlow ops of
        # the layers they came from are in the HLO module the profile stores.
        assert any("dot" in name or "MatMul" in name for name in names), sorted(names)
        assert b"hidden" in path.read_bytes() and b"MatMul" in path.read_bytes()
    else:
        # The plain loop's kernels, one event per op, "<op name>:<op type>", named by
        # the layer (with oneDNN on a CPU the type is `_MklMatMul` or a fused one).
        def matmuls(layer):
            return [name for name in names
                    if layer in name and "MatMul" in name.rpartition(":")[2]]

        assert matmuls("hidden") and matmuls("logits"), sorted(names)


def test_profile_marks_the_same_batches_as_keras_fit(tmp_path):
    _fit_profiled(tmp_path / "trainer")
    _fit_profiled(tmp_path / "keras", fit_with="keras")
    assert _profiled_steps(_profile(tmp_path / "trainer")[1]) == \
        _profiled_steps(_profile(tmp_path / "keras")[1]) == [2, 3, 4]


def test_with_a_fixed_steps_per_execution_the_profile_counts_executions_as_keras(tmp_path):
    # Keras calls batch hooks once per execution of `steps_per_execution` steps: batches
    # 3 to 5 of the callback are executions 3 to 5, steps 8 to 19 (each marked at its
    # first step). The Trainer's multi-step loop is what gets profiled.
    _fit_profiled(tmp_path / "trainer", steps_per_execution=4)
    _fit_profiled(tmp_path / "keras", fit_with="keras", steps_per_execution=4)
    assert _profiled_steps(_profile(tmp_path / "trainer")[1]) == \
        _profiled_steps(_profile(tmp_path / "keras")[1]) == [8, 12, 16]


class _Executions(keras.callbacks.Callback):
    """Counts the batch-end calls of each epoch: one per graph execution (it does not
    ask for every batch itself)."""

    batch_hooks_per_execution = True

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.calls[-1] += 1


def test_epochs_after_the_profile_keep_multi_step_executions(tmp_path):
    executions = _Executions()
    _fit_profiled(tmp_path, epochs=2, callbacks=[executions])
    _profile(tmp_path)
    steps = N_SAMPLES // BATCH
    # The profiled epoch runs one step per call (the callback sees batches 3 and 5);
    # once the profile is written the callback has nothing to do per batch.
    assert executions.calls[0] == steps
    assert executions.calls[1] < steps


# ---- CLI: customkeras train ... --profile A:B -----------------------------------------------

def _cli_run(run_dir, data_dir, *options):
    from customkeras.cli import main

    return main(["train", "fashion-mnist", "--output-dir", str(run_dir), "--data-dir",
                 str(data_dir), "--verbose", "0", "--epochs", "2", "--max-train-samples",
                 "2000", *options])


@pytest.mark.data
def test_cli_profile_writes_the_steps_profile_and_changes_no_result(tmp_path, data_dir,
                                                                    capsys):
    import json

    # 63 steps per epoch: steps 70 to 72 are in the second epoch.
    assert _cli_run(tmp_path / "plain", data_dir) == 0
    assert _cli_run(tmp_path / "profiled", data_dir, "--profile", "70:72") == 0
    out = capsys.readouterr().out
    assert "Profile of training steps 70-72:" in out and "Profile tab" in out
    _, space = _profile(tmp_path / "profiled" / "logs")
    assert _profiled_steps(space) == [69 - 63, 70 - 63, 71 - 63]  # the epoch's 0-based steps
    for name in ("history.json", "metrics.json"):
        assert (json.loads((tmp_path / "profiled" / name).read_text())
                == json.loads((tmp_path / "plain" / name).read_text()))
    # A diagnostic of this invocation, not part of what the run computes.
    document = json.loads((tmp_path / "profiled" / "config.json").read_text())
    assert "profile" not in document["config"]


@pytest.mark.data
def test_cli_profile_beyond_the_run_says_none_was_written(tmp_path, data_dir, capsys):
    assert _cli_run(tmp_path / "run", data_dir, "--profile", "1000:1001") == 0
    assert "No profile was written: this run trained fewer than 1000 steps" in \
        capsys.readouterr().err
    assert not list((tmp_path / "run" / "logs").glob("*/plugins/profile/*/*.xplane.pb"))
