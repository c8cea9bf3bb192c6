"""Time and peak memory of the customkeras loaders against a reference in the same run.

Each measurement runs in a fresh subprocess, so that its peak resident memory belongs to
that load alone:

* fashion-mnist: `customkeras.datasets.load_fashion_mnist` (verified: magic numbers, sizes,
  SHA-256 of every file) against Keras's own parsing (`gzip.open(...).read()` then
  `np.frombuffer`, as `keras.datasets.fashion_mnist.load_data` does) followed by the
  chapter's `X.astype(np.float32) / 255.` and validation split, unverified.
* california-housing: `customkeras.datasets.load_california_housing` against
  `np.loadtxt` of the same raw file, scikit-learn's transform and the chapter's splits
  and scaler, unverified.

Reported per loader: the best wall time of a few loads, the growth of the peak resident
set size (`ru_maxrss`) during the first load, and the tracemalloc peak (NumPy reports its
buffers to tracemalloc) during a later one; then ours / reference ratios. Results go to
benchmarks/results/datasets.json.

Usage: python benchmarks/bench_datasets.py [--data-dir DIR] [--repeats N]
"""

import argparse
import datetime
import gzip
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "datasets.json"
MB = 1024 * 1024


def reference_fashion_mnist(data_dir):
    """Keras's parsing (np.frombuffer over gzip) and the chapter's scaling and split."""
    folder = pathlib.Path(data_dir) / "fashion-mnist"
    arrays = []
    for name, offset in [
        ("train-labels-idx1-ubyte.gz", 8),
        ("train-images-idx3-ubyte.gz", 16),
        ("t10k-labels-idx1-ubyte.gz", 8),
        ("t10k-images-idx3-ubyte.gz", 16),
    ]:
        with gzip.open(folder / name, "rb") as stream:
            arrays.append(np.frombuffer(stream.read(), np.uint8, offset=offset))
    y_train_full, X_train_full, y_test, X_test = arrays
    X_train_full = X_train_full.reshape(-1, 28, 28).astype(np.float32) / 255.0
    X_test = X_test.reshape(-1, 28, 28).astype(np.float32) / 255.0
    X_valid, X_train = X_train_full[:5000], X_train_full[5000:]
    y_valid, y_train = y_train_full[:5000], y_train_full[5000:]
    return (X_train, y_train), (X_valid, y_valid), (X_test, y_test)


def reference_california_housing(data_dir):
    """np.loadtxt of the raw file, scikit-learn's transform, the chapter's splits/scaler."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    raw = np.loadtxt(
        pathlib.Path(data_dir) / "california-housing" / "cal_housing.data", delimiter=","
    )
    lon, lat, age, rooms, bedrooms, population, households, income, value = raw.T
    X = np.column_stack([income, age, rooms / households, bedrooms / households,
                         population, population / households, lat, lon])
    y = value / 100000.0
    X_train_full, X_test, y_train_full, y_test = train_test_split(
        X, y.reshape(-1, 1), random_state=42)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_train_full, y_train_full, random_state=42)
    scaler = StandardScaler().fit(X_train)
    return tuple((scaler.transform(X_), y_) for X_, y_ in
                 ((X_train, y_train), (X_valid, y_valid), (X_test, y_test)))


def _loader(dataset, implementation):
    import customkeras.datasets as datasets

    loaders = {
        ("fashion-mnist", "customkeras"): datasets.load_fashion_mnist,
        ("fashion-mnist", "reference"): reference_fashion_mnist,
        ("california-housing", "customkeras"): datasets.load_california_housing,
        ("california-housing", "reference"): reference_california_housing,
    }
    return loaders[dataset, implementation]


def _max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(dataset, implementation, data_dir, repeats):
    """Measure one loader in this (fresh) process; print one JSON line."""
    load = _loader(dataset, implementation)
    rss_before = _max_rss_bytes()
    start = time.perf_counter()
    result = load(data_dir)
    times = [time.perf_counter() - start]
    rss_growth = _max_rss_bytes() - rss_before
    returned = sum(array.nbytes for split in result for array in split)
    del result
    for _ in range(repeats - 1):
        start = time.perf_counter()
        load(data_dir)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    load(data_dir)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({
        "best_seconds": min(times),
        "median_seconds": statistics.median(times),
        "rss_growth_mb": rss_growth / MB,
        "tracemalloc_peak_mb": traced_peak / MB,
        "returned_mb": returned / MB,
    }))


def measure(dataset, implementation, data_dir, repeats):
    command = [sys.executable, __file__, "--worker", dataset, implementation,
               "--data-dir", str(data_dir), "--repeats", str(repeats)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(command, capture_output=True, text=True, env=environment,
                               check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def write_atomically(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CUSTOMKERAS_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("DATASET", "IMPLEMENTATION"))
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("pass --data-dir or set CUSTOMKERAS_DATA_DIR (fashion-mnist/, "
                     "california-housing/)")
    if args.worker:
        worker(*args.worker, args.data_dir, args.repeats)
        return
    report = {
        "benchmark": "datasets",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "results": {},
    }
    print(f"{'dataset':<20}{'loader':<13}{'best s':>8}{'median s':>10}{'RSS +MB':>9}"
          f"{'traced MB':>11}{'returned MB':>13}")
    for dataset in ("fashion-mnist", "california-housing"):
        rows = {name: measure(dataset, name, args.data_dir, args.repeats)
                for name in ("customkeras", "reference")}
        for name, row in rows.items():
            print(f"{dataset:<20}{name:<13}{row['best_seconds']:>8.3f}"
                  f"{row['median_seconds']:>10.3f}{row['rss_growth_mb']:>9.0f}"
                  f"{row['tracemalloc_peak_mb']:>11.0f}{row['returned_mb']:>13.0f}")
        ours, reference = rows["customkeras"], rows["reference"]
        ratios = {
            "time": ours["best_seconds"] / reference["best_seconds"],
            "rss_growth": ours["rss_growth_mb"] / reference["rss_growth_mb"],
            "tracemalloc_peak": ours["tracemalloc_peak_mb"] / reference["tracemalloc_peak_mb"],
        }
        print(f"{dataset:<20}{'ratio':<13}" + "  ".join(
            f"{key} {value:.2f}x" for key, value in ratios.items()))
        report["results"][dataset] = {**rows, "ratio_customkeras_over_reference": ratios}
    write_atomically(RESULTS, json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
