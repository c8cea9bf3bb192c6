"""What dropping a finished tf.data iterator costs the thread that drops it.

Destroying an iterator joins its pipeline's threads; the autotuning thread notices only
at its next wake-up, whose period grows as the iterator lives. `DatasetSource` hands a
finished iterator to a releasing thread (`training/sources/iterator_release.py`) so
that the training thread never waits for that. This script measures the wait it
avoids: for passes of the chapter's input shape (Fashion-MNIST sized random data,
60,000 samples of 784 floats, `shuffle(60000).batch(32).prefetch(AUTOTUNE)`) read over
about 0.3 s, 1 s and 3 s, the time `del iterator` takes on the thread that drops the
last reference, and the time `release_later(iterator)` takes on the caller's.

Usage: python benchmarks/bench_iterator_release.py [--repeats N]
Results: benchmarks/results/iterator_release.json
"""

import argparse
import datetime
import json
import pathlib
import statistics
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "iterator_release.json"
PASS_SECONDS = (0.3, 1.0, 3.0)


def _read(dataset, seconds):
    """A finished iterator of `dataset`, read over about `seconds`."""
    iterator = iter(dataset)
    start = time.perf_counter()
    for count, _ in enumerate(iterator, 1):
        if count % 200 == 0 and time.perf_counter() - start < seconds:
            time.sleep(seconds / 10)
    return iterator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    from customkeras.training.sources.iterator_release import release_later

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(60000, 784)).astype("float32")
    y = rng.integers(0, 10, 60000)
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(60000, seed=1).batch(32)
               .prefetch(tf.data.AUTOTUNE))
    rows = []
    for seconds in PASS_SECONDS:
        dropped, released = [], []
        for _ in range(args.repeats):
            iterator = _read(dataset, seconds)
            start = time.perf_counter()
            del iterator
            dropped.append(time.perf_counter() - start)
            iterator = _read(dataset, seconds)
            start = time.perf_counter()
            release_later(iterator)
            del iterator
            released.append(time.perf_counter() - start)
        rows.append({"pass_seconds": seconds,
                     "drop_on_caller_s": {"median": statistics.median(dropped),
                                          "max": max(dropped), "all": dropped},
                     "release_later_on_caller_s": {"median": statistics.median(released),
                                                   "max": max(released)}})
        print(f"pass ~{seconds:g} s: del on the caller median {statistics.median(dropped):.4f}"
              f" s, max {max(dropped):.3f} s; release_later max {max(released):.4f} s")
    RESULTS.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__, "repeats": args.repeats, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
