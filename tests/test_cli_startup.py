"""The command answers `--help` and usage errors before TensorFlow or Keras is imported.

Checked through `sys.modules` and `-X importtime` in fresh processes (no TensorFlow
start-up in them, so they take a fraction of a second), never through timings; the
timings are in `benchmarks/bench_cli_startup.py`.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from customkeras.cli import config, main

SRC = str(pathlib.Path(__file__).resolve().parents[1] / "src")
HEAVY = ("tensorflow", "keras", "jax", "torch", "numpy", "matplotlib")

# Each argv: (arguments, expected exit status). Parsing, help and value checks only.
CASES = [
    (["--help"], 0),
    (["--version"], 0),
    (["train", "--help"], 0),
    (["train", "fashion-mnist", "--help"], 0),
    (["train", "housing", "--help"], 0),
    (["train", "my_experiment.py:build", "--help"], 0),
    (["evaluate", "--help"], 0),
    (["predict", "--help"], 0),
    (["verify", "--help"], 0),
    (["trace", "--help"], 0),
    ([], 2),
    (["train"], 2),
    (["train", "fashion-mnist", "--epochs", "0"], 2),
    (["train", "fashion-mnist", "--lr", "nan"], 2),
    (["train", "fashion-mnist", "--seed", "-1"], 2),
    (["train", "fashion-mnist", "--profile", "5:3"], 2),
    (["train", "housing", "--metrics", "mae,nope"], 2),
    (["train", "fashion-mnist", "--optimizer", "sgd", "--lower-lr", "1e-3"], 2),
    (["train", "housing", "--model", "nope"], 2),
    (["train", "--config", "/nonexistent/config.json"], 2),
    (["train", "fashion-mnist", "--strategy", "multi-worker"], 2),
    (["train", "nope.py:build"], 2),
    (["predict", "x.keras", "--n", "0"], 2),
    (["trace", "cube", "--example", "1"], 2),
]

_PROBE = """
import json, sys
cases, heavy_names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["customkeras"]  # as the console script starts
from customkeras.cli import main
statuses = []
for argv, _ in cases:
    try:
        statuses.append(main(argv))
    except SystemExit as exit:
        statuses.append(exit.code)
heavy = sorted(name for name in heavy_names if name in sys.modules)
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def _environment():
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_help_and_usage_errors_import_neither_tensorflow_nor_keras(tmp_path):
    # One process runs every case in turn: none of them may have imported a heavy module.
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(CASES), json.dumps(HEAVY)],
                          capture_output=True, text=True, env=_environment(), cwd=tmp_path,
                          timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["statuses"] == [status for _, status in CASES]
    # Usage errors are one line each; no traceback.
    assert "Traceback" not in done.stderr
    assert "customkeras train: error: `epochs` must be an integer >= 1" in done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"],
                                  ["train", "fashion-mnist", "--input", "stream", "--lr", "-1"]])
def test_python_dash_m_imports_no_tensorflow(tmp_path, argv):
    # `python -m customkeras.cli` as the README and the tests run it: -X importtime lists
    # every module the process imported.
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "customkeras.cli", *argv],
                          capture_output=True, text=True, env=_environment(), cwd=tmp_path,
                          timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "customkeras" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert done.returncode == (0 if "--help" in argv else 2)


def test_values_kept_here_to_stay_light_agree_with_the_training_package():
    from customkeras import training
    from customkeras.cli import cluster

    assert config.STRATEGIES == training.STRATEGIES
    assert cluster.start_strategy.__defaults__[0] == config.DEFAULT_WORKER_TIMEOUT
    from customkeras.cli.errors import EXIT_INTERRUPTED
    assert EXIT_INTERRUPTED == training.run.EXIT_INTERRUPTED


def test_train_help_lists_every_experiments_options_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--model", "--loss", "--threshold", "--metrics", "--lower-optimizer",
                   "--lower-lr", "--upper-optimizer", "--upper-lr", "--input",
                   "--max-train-samples", "--jit-compile"):
        assert option in out, option
    for name in ("fashion-mnist", "housing", "MODULE:FUNCTION"):
        assert f"options of 'customkeras train {name} ...'" in out
    assert "example: customkeras train housing --model residual" in out


def test_trace_help_names_file_py_colon_function(capsys):
    with pytest.raises(SystemExit):
        main(["trace", "--help"])
    out = capsys.readouterr().out
    assert "FILE.py:FUNCTION" in out and "customkeras trace mysteps.py:cube" in out
