"""What every benchmark script shares: data, timers, child processes and the results files.

Each contender runs in a child process of its own (`python SCRIPT --child WORKLOAD
CONTENDER --settings JSON`), so that its imports, compilation caches and peak resident
memory are its own, and so that Keras on the JAX backend (`KERAS_BACKEND=jax`) never
shares a process with TensorFlow's Keras. A contender that raises, crashes or times out
becomes an `{"unavailable": "<error>"}` row: the run goes on, and the table says why.

Contenders run in rounds (A B C ... A B C ...), so a slow spell of the shared machine
hits every contender alike; each figure keeps its best round (other processes only ever
slow a run down), test accuracies are averaged over the rounds' shuffle seeds.

Two options bound a run: `--budget SECONDS` (contenders not started in time are recorded
as not run, and each child's timeout is cut to what is left), and `--shared-processes`
(each round runs all contenders of one Keras backend in one process: much faster to start,
for smoke tests; their peak RSS and caches are then shared, so they measure nothing).
"""

import argparse
import datetime
import gzip
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time
import traceback

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
SCHEMA = 2
BATCH_SIZE = 32
LEARNING_RATE = 0.01
SEED = 42
_MARKER = "@@bench-result@@ "
# Figures whose best round is the smallest / the largest; the rest keep the first round's.
_LOWER_IS_BETTER = ("_seconds",)
_HIGHER_IS_BETTER = ("steps_per_s", "samples_per_s")
_AVERAGED = ("test_accuracy",)
_data_source = None


# --- data -------------------------------------------------------------------------------

def _read_idx(path, offset):
    import numpy as np

    with gzip.open(path, "rb") as stream:
        return np.frombuffer(stream.read(), np.uint8, offset=offset)


def _raw_fashion_mnist(data_dir):
    """Fashion-MNIST as `load_fashion_mnist` splits it, read without TensorFlow (JAX children)."""
    import numpy as np

    folder = pathlib.Path(data_dir) / "fashion-mnist"
    x_full = _read_idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_full = _read_idx(folder / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    x_test = _read_idx(folder / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_test = _read_idx(folder / "t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    x_full = x_full.astype(np.float32) / np.float32(255)
    x_test = x_test.astype(np.float32) / np.float32(255)
    return (x_full[5000:], y_full[5000:]), (x_full[:5000], y_full[:5000]), (x_test, y_test)


def load_data(settings, with_tensorflow=True):
    """The three splits `((x, y), (x, y), (x, y))`, cut to the workload's sizes.

    TensorFlow children use `customkeras.datasets.load_fashion_mnist` (verified, and
    aligned so that TensorFlow imports it without a copy); JAX children read the same
    files with NumPy, so that they never import TensorFlow. Without a data directory,
    random data of the same shapes stands in (the result's "data" says which).
    """
    import numpy as np

    global _data_source

    data_dir = settings.get("data_dir") or os.environ.get("CUSTOMKERAS_DATA_DIR")
    source = "fashion-mnist" if data_dir else "random"
    # A named directory that fails to load fails the contender: figures on random data
    # must never sit beside figures on the real data unnoticed.
    if data_dir and with_tensorflow:
        from customkeras.datasets import load_fashion_mnist

        splits = load_fashion_mnist(data_dir)
    elif data_dir:
        splits = _raw_fashion_mnist(data_dir)
    else:
        rng = np.random.default_rng(SEED)
        splits = [(rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n))
                  for n in (55_000, 5_000, 10_000)]
    sizes = (settings.get("train_samples"), settings.get("valid_samples"),
             settings.get("test_samples"))
    _data_source = source
    return tuple((x[:n], y[:n]) if n else (x, y) for (x, y), n in zip(splits, sizes))


def steps_per_epoch(n_samples, batch_size=BATCH_SIZE):
    return -(-n_samples // batch_size)


# --- timing -----------------------------------------------------------------------------

def epoch_timer():
    """A Keras callback that records each epoch's seconds (validation included, as in fit)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def training_figures(wall_seconds, epoch_seconds, steps):
    """Wall time, per-epoch times, and steady steps/s (median epoch after the first)."""
    steady = sorted(epoch_seconds[1:] or epoch_seconds)
    median = steady[len(steady) // 2] if len(steady) % 2 else sum(
        steady[len(steady) // 2 - 1:len(steady) // 2 + 1]) / 2
    return {
        "wall_seconds": wall_seconds,
        "epoch_seconds": [round(s, 4) for s in epoch_seconds],
        "steps_per_epoch": steps,
        "first_epoch_seconds": epoch_seconds[0],
        "steady_steps_per_s": steps / median,
    }


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unavailable(error):
    """The row of a contender that cannot run: the error's type and message, on one line."""
    message = " ".join(str(error).split())
    return {"unavailable": f"{type(error).__name__}: {message}"[:400]}


def guarded(function, *args, **kwargs):
    """Runs one part of a contender; its failure becomes that part's "unavailable" row."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # every failure is a result here, never a crash
        traceback.print_exc()
        return unavailable(error)


# --- child processes --------------------------------------------------------------------

def child_main(contenders, workload, contender, settings):
    """Runs one contender in this process and prints its result for the parent (one
    marker line: a process of `--shared-processes` prints one per contender, in order)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _, function = contenders[workload][contender]
    cpu = time.process_time()
    result = guarded(function, settings)
    result["cpu_seconds"] = round(time.process_time() - cpu, 2)  # all threads' CPU time
    result["peak_rss_mb"] = peak_rss_mb()
    result["data"] = _data_source
    print(_MARKER + json.dumps(result), flush=True)


def _run_child(script, workload, contender, backend, settings, timeout):
    """Runs one contender in a child process; returns its result."""
    return _run_children(script, [(workload, contender)], backend, [settings], timeout)[0]


def _run_children(script, jobs, backend, settings, timeout):
    """Runs `jobs` (`[(workload, contender)]`, with their `settings`) in one child
    process; returns their results in order."""
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if len(jobs) == 1:
        command = [sys.executable, str(script), "--child", *jobs[0],
                   "--settings", json.dumps(settings[0])]
    else:
        command = [sys.executable, str(script), "--children", json.dumps(jobs),
                   "--settings", json.dumps(settings)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=environment,
                              timeout=timeout)
        stdout, failure = done.stdout, None
    except subprocess.TimeoutExpired as error:
        # The contenders that finished before the timeout keep their results.
        stdout = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout or ""
        failure = {"unavailable": f"timed out after {timeout} s"}
    results = [json.loads(line[len(_MARKER):]) for line in stdout.splitlines()
               if line.startswith(_MARKER)]
    if len(results) < len(jobs) and failure is None:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        failure = {"unavailable": f"process exited with status {done.returncode}: {last}"[:300]}
    return results[:len(jobs)] + [failure] * (len(jobs) - len(results))


def _combine(rounds):
    """One result from several rounds: the best of each figure, the mean accuracy."""
    available = [r for r in rounds if "unavailable" not in r]
    if not available:
        return rounds[0]
    combined = {}
    for key, first in available[0].items():
        values = [r[key] for r in available if key in r]
        if isinstance(first, dict):
            combined[key] = _combine(values)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            if key.endswith(_LOWER_IS_BETTER):
                combined[key] = min(values)
            elif key.endswith(_HIGHER_IS_BETTER):
                combined[key] = max(values)
            elif key.endswith(_AVERAGED):
                combined[key] = sum(values) / len(values)
            else:
                combined[key] = first
            if len(values) > 1:
                combined.setdefault("rounds", {})[key] = values
        else:
            combined[key] = first
    if len(available) < len(rounds):
        combined["failed_rounds"] = [r["unavailable"] for r in rounds if "unavailable" in r]
    return combined


# --- the parent -------------------------------------------------------------------------

def parse_args(description, contenders, default_output, add_options=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test settings (1-2 epochs on a few samples, 1 round); "
                             "results go to a temporary file unless --output is given")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of every contender (default 2, 1 with --quick)")
    parser.add_argument("--workload", choices=sorted(contenders), action="append",
                        help="run only this workload (repeatable)")
    parser.add_argument("--only", action="append", metavar="CONTENDER",
                        help="run only this contender (repeatable)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help=f"results file (default {default_output.relative_to(RESULTS_DIR.parent.parent)})")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per contender run")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="seconds for the whole run: contenders not started by then are "
                             "recorded as not run, and a child's timeout is cut to what is "
                             "left (default: no limit)")
    parser.add_argument("--shared-processes", action="store_true",
                        help="run each round's contenders of one Keras backend in one process "
                             "(a smoke test: they share caches and peak RSS)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--children", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    if add_options is not None:
        add_options(parser)
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.output is None:
        args.output = (pathlib.Path("/tmp") / f"quick-{default_output.name}" if args.quick
                       else default_output)
    return args


def run_benchmark(script, description, contenders, settings_for, default_output,
                  add_options=None, prepare=None):
    """Parses the command line, runs the contenders in rounds and merges the results file.

    Args:
        script: Path of the calling script (the children run it again).
        description: Its one-line description.
        contenders: `{workload: {contender: (keras_backend, function)}}`; `function(settings)`
            returns a dict of figures.
        settings_for: `settings_for(workload, quick) -> dict` (JSON-serialisable).
        default_output: Path of the results file.
        add_options: None, or `add_options(parser)` adding the script's own options to
            the `argparse` parser. Defaults to None.
        prepare: None, or `prepare(args)`, called in the parent only, before any
            contender runs: it may change `args` or exit. Defaults to None.
    """
    args = parse_args(description, contenders, default_output, add_options)
    if args.child:
        workload, contender = args.child
        child_main(contenders, workload, contender, json.loads(args.settings))
        return
    if args.children:
        for (workload, contender), settings in zip(json.loads(args.children),
                                                   json.loads(args.settings), strict=True):
            child_main(contenders, workload, contender, settings)
        return
    if prepare is not None:
        prepare(args)
    workloads = args.workload or list(contenders)
    known = {name for workload in workloads for name in contenders[workload]}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        sys.exit(f"--only: no contender named {', '.join(unknown)} in workloads "
                 f"{', '.join(workloads)}; expected one of {', '.join(sorted(known))}")
    report = _load(args.output, args.quick)
    report["script"] = pathlib.Path(script).name  # which benchmark wrote the file
    plan = []
    for workload in workloads:
        settings = dict(settings_for(workload, args.quick), data_dir=args.data_dir)
        names = [n for n in contenders[workload] if not args.only or n in args.only]
        if names:
            plan.append((workload, settings, names))
    deadline = None if args.budget is None else time.perf_counter() + args.budget
    run = _shared_rounds if args.shared_processes else _separate_rounds
    for workload, settings, rounds, seconds in run(script, contenders, plan, args, deadline):
        entry = report["workloads"].setdefault(workload, {"contenders": {}})
        entry.update(date=_now(), settings=settings, rounds=args.rounds,
                     seconds=round(seconds, 1), load_average_at_end=os.getloadavg())
        if args.shared_processes:
            entry["shared_processes"] = True
        entry.setdefault("contenders", {}).update(
            {name: _combine(results) for name, results in rounds.items()})
        _write(args.output, report)
    print(f"[bench] written to {args.output}", file=sys.stderr)
    try:  # the same summary that report.py renders for the README
        import report as report_module
    except ImportError:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        import report as report_module
    print(report_module.render_file(args.output))


def _separate_rounds(script, contenders, plan, args, deadline):
    """Yields `(workload, settings, {contender: [round results]}, seconds)`, each
    contender of each round in a process of its own."""
    for workload, settings, names in plan:
        rounds = {name: [] for name in names}
        started = time.perf_counter()
        for round_index in range(args.rounds):
            for name in names:
                print(f"[bench] {workload} / {name} (round {round_index + 1}/{args.rounds}) ...",
                      file=sys.stderr, flush=True)
                rounds[name] += _children(script, [(workload, name)], contenders[workload][name][0],
                                          [dict(settings, seed=round_index)], args, deadline)
        yield workload, settings, rounds, time.perf_counter() - started


def _shared_rounds(script, contenders, plan, args, deadline):
    """As `_separate_rounds`, each round's contenders of one backend in one process."""
    rounds = {(workload, name): [] for workload, _, names in plan for name in names}
    started = time.perf_counter()
    for round_index in range(args.rounds):
        by_backend = {}
        for workload, settings, names in plan:
            for name in names:
                by_backend.setdefault(contenders[workload][name][0], []).append(
                    ((workload, name), dict(settings, seed=round_index)))
        for backend, jobs in by_backend.items():
            print(f"[bench] {len(jobs)} contenders on {backend} in one process (round "
                  f"{round_index + 1}/{args.rounds}) ...", file=sys.stderr, flush=True)
            results = _children(script, [job for job, _ in jobs], backend,
                                [settings for _, settings in jobs], args, deadline)
            for (job, _), result in zip(jobs, results, strict=True):
                rounds[job].append(result)
    seconds = time.perf_counter() - started
    for workload, settings, names in plan:
        yield workload, settings, {name: rounds[(workload, name)] for name in names}, seconds


def _children(script, jobs, backend, settings, args, deadline):
    """`_run_children` within the `--budget`: jobs it leaves no time for are not run."""
    timeout = args.timeout
    if deadline is not None:
        left = int(deadline - time.perf_counter())
        if left < 1:
            print("[bench]   not run: the budget is spent", file=sys.stderr)
            return [{"unavailable": f"not run: the --budget of {args.budget:g} s was spent"}
                    ] * len(jobs)
        timeout = min(timeout, left)
    stolen = _stolen_cpu_seconds()
    results = _run_children(script, jobs, backend, settings, timeout)
    for result in results:
        if "unavailable" in result:
            print(f"[bench]   unavailable: {result['unavailable']}", file=sys.stderr)
        elif stolen is not None and len(jobs) == 1:
            result["stolen_cpu_seconds"] = round(_stolen_cpu_seconds() - stolen, 2)
    return results


def _stolen_cpu_seconds():
    """CPU time the hypervisor gave other machines so far (Linux's `steal`, all CPUs),
    or None: a round during which much was stolen measured a slower machine."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _load(path, quick):
    fresh = {"schema": SCHEMA, "quick": quick, "workloads": {}}
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return fresh
    # Results of other settings or of the older layout are replaced, never mixed with.
    if report.get("schema") != SCHEMA or report.get("quick") != quick:
        return fresh
    return report


def _write(path, report):
    from importlib import metadata

    versions = {}
    for package in ("tensorflow", "keras", "jax", "jaxlib", "optax"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    report["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "platform": platform.platform(), "packages": versions}
    report["date"] = _now()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    temporary.replace(path)
