"""`benchmarks/bench_gpu.py` (`make bench-gpu`): its dry run works end to end on a CPU,
writes no results, and `benchmarks/report.py` says that there are no GPU figures yet.

The dry run is the whole script at tiny sizes, in subprocesses as on a GPU: every
workload and contender must run (none unavailable), with finite figures and ratios.
"""

import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPT = BENCHMARKS / "bench_gpu.py"
RESULTS = BENCHMARKS / "results" / "gpu.json"
WORKLOADS = {"main", "resnet", "cnn", "gan", "tf_data"}
PEERS = {"tf_fit", "tf_fit_spe32", "tf_fit_spe32_xla", "jax_fit_spe32"}
# On a quiet 2-core machine the dry run's wall time is about its CPU time (its processes
# run one after the other); CPU time does not grow when other processes share the cores.
CPU_SECONDS = 120


def _environment(**extra):
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _report_modules():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _report_gpu
        import report
    finally:
        sys.path.remove(str(BENCHMARKS))
    return _report_gpu, report


def _run_dry_run(output):
    """Runs `bench_gpu.py --dry-run`; returns its report, stdout, wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--output", str(output)],
                          capture_output=True, text=True, env=_environment(), cwd=ROOT,
                          timeout=900)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"bench_gpu.py --dry-run: {wall:.0f} s wall, {cpu:.0f} s CPU")
    return json.loads(output.read_text()), done.stdout, wall, cpu


def _check_structure(report):
    assert report["script"] == "bench_gpu.py"
    assert report["quick"] is True and report["dry_run"] is True
    assert set(report["workloads"]) == WORKLOADS
    for name, workload in report["workloads"].items():
        expected = (PEERS - {"jax_fit_spe32"} if name == "gan" else PEERS) | {"trainer"}
        if name in ("resnet", "cnn"):  # the XLA policy for convolutions, measured
            expected.add("trainer_no_xla")
        assert set(workload["contenders"]) == expected, name
        assert workload.get("shared_processes") is True
        for contender, result in workload["contenders"].items():
            assert "unavailable" not in result, (name, contender, result)
            assert result["device"] == "CPU", (name, contender)
            for key in ("wall_seconds", "steady_steps_per_s"):
                assert math.isfinite(result[key]) and result[key] > 0, (name, contender, key)
        # The Trainer says which loops ran XLA and why: keyed to the device it ran on.
        assert workload["contenders"]["trainer"]["xla"]["train"].startswith(
            ("auto: a CPU", "auto: convolutions on a CPU"))
    resnet = report["workloads"]["resnet"]["contenders"]
    assert resnet["trainer"]["xla"]["train"] == "auto: convolutions on a CPU (Conv2D)"
    assert resnet["trainer_no_xla"]["xla"]["train"] == "jit_compile=False"
    # Keras's "auto" is no XLA on a CPU-only machine (XLA on a GPU).
    assert resnet["tf_fit"]["jit_compile"] is False
    assert resnet["tf_fit_spe32_xla"]["jit_compile"] is True


def _check_ratios(report):
    assert set(report["ratios"]) == WORKLOADS
    for name, ratios in report["ratios"].items():
        contenders = report["workloads"][name]["contenders"]
        assert set(ratios) == set(contenders) - {"trainer"}
        for peer, ratio in ratios.items():
            assert math.isfinite(ratio) and ratio > 0
            assert ratio == pytest.approx(contenders["trainer"]["steady_steps_per_s"]
                                          / contenders[peer]["steady_steps_per_s"])


# One test (not several sharing a fixture): under `pytest -n 2` each worker would run
# the dry run again.
@pytest.mark.slow
def test_dry_run_runs_everything_on_the_cpu_quickly_and_writes_no_results(tmp_path):
    results_before = RESULTS.stat().st_mtime_ns if RESULTS.exists() else None
    report, stdout, wall, cpu = _run_dry_run(tmp_path / "gpu.json")
    _check_structure(report)
    _check_ratios(report)
    assert cpu < CPU_SECONDS, f"{cpu:.0f} s of CPU ({wall:.0f} s wall)"
    after = RESULTS.stat().st_mtime_ns if RESULTS.exists() else None
    assert after == results_before  # benchmarks/results/gpu.json untouched
    assert "Dry run (`--dry-run`)" in stdout and "measure nothing" in stdout
    _report_gpu, report_module = _report_modules()
    # A dry run is no GPU figure: the README's block says there are none yet.
    assert report_module.render_report(report).startswith("**Dry run")
    assert _report_gpu.readme_block(report).startswith("No GPU figures yet")


def test_readme_block_without_results_says_no_gpu_figures_yet(tmp_path):
    _, report = _report_modules()
    assert report.render_block("gpu", results_dir=tmp_path).startswith("No GPU figures yet")


def test_readme_block_of_a_gpu_run_renders_its_ratios(tmp_path):
    _, report = _report_modules()
    figures = {"wall_seconds": 10.0, "steady_steps_per_s": 100.0, "device": "GPU: Test"}
    gpu_run = {"schema": 2, "quick": False, "dry_run": False, "script": "bench_gpu.py",
               "date": "2026-12-07T00:00:00+00:00", "workloads": {"resnet": {
                   "settings": {"epochs": 3, "batch_size": 256, "image_size": 32},
                   "rounds": 1,
                   "contenders": {"tf_fit_spe32_xla": figures,
                                  "jax_fit_spe32": {**figures, "device": "CPU"},
                                  "trainer": {**figures, "steady_steps_per_s": 150.0,
                                              "xla": {"train": "auto: a GPU or TPU"}}}}}}
    (tmp_path / "gpu.json").write_text(json.dumps(gpu_run))
    text = report.render_block("gpu", results_dir=tmp_path)
    assert text.startswith("**On one GPU** (CPU, GPU: Test;")
    assert "32x32x3 images, batch 256, 3 epochs" in text and "1.50×" in text
    assert "auto: a GPU or TPU" in text
    assert "**Not on a GPU, so not comparable:** resnet / jax_fit_spe32." in text


def test_without_a_gpu_the_script_refuses_and_says_what_to_do(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--output", str(tmp_path / "g.json")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=_environment(CUDA_VISIBLE_DEVICES=""))
    assert done.returncode != 0
    assert "TensorFlow sees no GPU" in done.stderr and "--dry-run" in done.stderr
    assert not (tmp_path / "g.json").exists()


def test_a_dry_run_refuses_to_write_into_the_results(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--output",
                           str(RESULTS.parent / "gpu-dry.json")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=_environment())
    assert done.returncode != 0 and "--dry-run writes no results" in done.stderr
    assert not (RESULTS.parent / "gpu-dry.json").exists()
