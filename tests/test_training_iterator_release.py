"""Finished tf.data iterators are dropped on the releasing thread, not the training one.

Dropping an iterator can wait for its pipeline's autotuning thread; `release_later`
moves that wait off the caller's thread, and only once nobody holds the iterator.
"""

import subprocess
import sys
import threading
import time
import weakref

import numpy as np
import tensorflow as tf
from data_source_helpers import data, trainer_for
from training_helpers import mlp

from customkeras.training.sources import datasets
from customkeras.training.sources.iterator_release import release_later


class Tracked:
    """Records on which thread it was dropped."""

    def __init__(self, dropped):
        self.dropped = dropped

    def __del__(self):
        self.dropped.append(threading.current_thread().name)


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_an_iterator_is_dropped_on_the_releasing_thread_once_nobody_holds_it():
    dropped = []
    held = Tracked(dropped)
    release_later(held)
    release_later(None)  # nothing to release
    time.sleep(0.2)
    assert dropped == []  # the caller still holds it
    del held
    assert _wait_for(lambda: dropped), "never dropped"
    assert dropped == ["customkeras-iterator-release"]


def test_fit_and_evaluate_release_every_finished_iterator(monkeypatch):
    made, released = [], []
    make = datasets.DatasetSource._iter

    def recorded(self, dataset):
        iterator = make(self, dataset)
        made.append(weakref.ref(iterator))
        return iterator

    def release(iterator):
        if iterator is not None:
            released.append(weakref.ref(iterator))
        release_later(iterator)

    monkeypatch.setattr(datasets.DatasetSource, "_iter", recorded)
    monkeypatch.setattr(datasets, "release_later", release)
    x, y, w = data(200)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(200, seed=1).batch(16)
    trainer = trainer_for(mlp(seed=1))
    trainer.fit(dataset, epochs=3, validation_data=dataset, verbose=0)
    assert np.isfinite(trainer.evaluate(dataset, verbose=0, return_dict=True)["loss"])
    # Two per training epoch (Keras makes the next epoch's at the end of one, and a
    # new one at its start), one per validation and evaluation pass.
    assert len(made) == 10
    # Every one but the last training epoch's went to the releasing thread.
    assert len(released) == 9
    assert _wait_for(lambda: all(ref() is None for ref in made)), \
        f"{sum(ref() is not None for ref in made)} iterators still alive"


def test_the_process_exits_at_once_while_iterators_wait_for_release(tmp_path):
    # One iterator still held at exit, one being released: the process ends with
    # status 0 and without the releasing thread's wait for references.
    script = tmp_path / "exit.py"
    script.write_text(
        "import time\n"
        "import tensorflow as tf\n"
        "from customkeras.training.sources.iterator_release import release_later\n"
        "ds = tf.data.Dataset.range(10_000).shuffle(1000).batch(8).prefetch(2)\n"
        "held = iter(ds); next(held); release_later(held)\n"
        "dropped = iter(ds); next(dropped); release_later(dropped); del dropped\n"
        "print(time.time())\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300)
    exit_seconds = time.time() - float(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert exit_seconds < 10, f"exiting took {exit_seconds:.1f} s"
