"""Start-up of the `customkeras` command: whole processes, before and after, side by side.

Times `python -m customkeras.cli ARGS` as a whole process (wall clock from spawn to exit,
plus the child's user+system CPU from `os.wait4`) for a few commands that should answer
at once: `--help`, `train --help` and a usage error. "before" runs the same commands on
another copy of the sources (default: the commit before the lazy start-up, its `src/`
extracted into a temporary directory with `git archive`; or `--before-src DIR`), "after" on this
checkout's `src/`. Runs alternate (before, after, before, ...) so that a machine getting
busier or quieter affects both alike; medians and the before/after ratio of each pair are
reported. Results go to benchmarks/results/cli_startup.json.

Usage: python benchmarks/bench_cli_startup.py [--rounds N] [--before-src DIR | --before-ref REF]
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cli_startup.json"
# The last commit whose command imported TensorFlow before parsing its arguments.
BEFORE_REF = "cb355b8"
COMMANDS = {
    "--help": ["--help"],
    "train --help": ["train", "--help"],
    "usage error (--epochs 0)": ["train", "fashion-mnist", "--epochs", "0"],
}


def run_once(src: str, argv: list[str]) -> dict:
    """One whole process: its wall time, CPU time and exit status."""
    env = {**os.environ, "PYTHONPATH": src, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "customkeras.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "exit_status": process.returncode}


def measure(before_src: str, after_src: str, rounds: int) -> dict:
    """Alternating runs of every command; medians and per-pair ratios."""
    results = {}
    for name, argv in COMMANDS.items():
        run_once(after_src, argv)  # warm the file cache for both copies
        run_once(before_src, argv)
        pairs = [(run_once(before_src, argv), run_once(after_src, argv)) for _ in range(rounds)]
        before = [b["wall_s"] for b, _ in pairs]
        after = [a["wall_s"] for _, a in pairs]
        results[name] = {
            "argv": argv,
            "exit_status": {"before": pairs[0][0]["exit_status"],
                            "after": pairs[0][1]["exit_status"]},
            "before_wall_s": {"median": statistics.median(before), "min": min(before),
                              "max": max(before)},
            "after_wall_s": {"median": statistics.median(after), "min": min(after),
                             "max": max(after)},
            "before_cpu_s_median": statistics.median(b["cpu_s"] for b, _ in pairs),
            "after_cpu_s_median": statistics.median(a["cpu_s"] for _, a in pairs),
            "speedup_median": statistics.median(b / a for b, a in zip(before, after)),
        }
        print(f"{name:28s} before {results[name]['before_wall_s']['median']:6.2f} s   "
              f"after {results[name]['after_wall_s']['median']:6.3f} s   "
              f"x{results[name]['speedup_median']:.0f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="pairs per command (default: 5)")
    parser.add_argument("--before-src", help="the 'before' sources' src/ directory")
    parser.add_argument("--before-ref", default=BEFORE_REF,
                        help=f"git commit for 'before' when --before-src is not given "
                             f"(default: {BEFORE_REF})")
    parser.add_argument("--output", default=str(RESULTS), help="where the JSON goes")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        before_src = options.before_src
        if before_src is None:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", options.before_ref,
                                      "src"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
            before_src = str(pathlib.Path(scratch) / "src")
        results = measure(before_src, str(ROOT / "src"), options.rounds)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    document = {
        "benchmark": "cli_startup",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min_at_end": load},
        "before": options.before_src or f"git {options.before_ref}",
        "rounds": options.rounds,
        "commands": results,
    }
    pathlib.Path(options.output).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(options.output).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
