"""Where the time of one-epoch `fit` calls goes: set-up, tracing, XLA compilation, steps.

The figures behind `jit_compile="auto"`'s policy (`xla_choice`: XLA on a CPU from the
first step, unless the step has convolutions): does compiling pay from a one-epoch call
on (the break-even step count), and are convolutions slower under XLA? A
`Trainer` makes `--calls` calls `fit(x, y, epochs=e + 1, initial_epoch=e, verbose=0)`
(batch 32, Nadam(1e-2); `--validation` adds the 5,000 validation images), each
configuration in a child process of its own (`_harness.py`):

* mlp_plain, mlp_xla, mlp_auto   exercise 13a's MLP, Fashion-MNIST's 55,000 training
                                 images, `jit_compile=False`, `True`, `"auto"`;
* cnn_plain, cnn_xla, cnn_auto   the small CNN (`_models.cnn`), the first 20,000 images
                                 (`cnn_xla`: 2 calls, its steps are ~8x slower on CPU);
* jax_mlp_spe32                  Keras `fit` on the JAX backend, `steps_per_execution=32`.

Each call is timed whole. A probe wraps the `Trainer`'s resident-array training loops
(`Loops._function`, in the child only) and times each graph execution, tracing it first
(`get_concrete_function`) so that the trace and the first run (XLA: the compilation)
come apart. Per configuration: set-up (`Trainer(...)` plus the first call's work before
its first execution), each loop's trace and first-run extra (over a steady execution of
as many steps), seconds per step of the steady calls. Per model: C, the XLA path's
extra one-off cost, p and x (plain and XLA seconds per step) and the break-even step
count C / (p - x). On JAX, JAX's monitoring events time trace, lowering and compilation.

`--rounds N` alternates the configurations; each keeps its fastest round whole. The
load average is recorded around each configuration.
Results: benchmarks/results/call_profile.json; `python benchmarks/report.py` renders them.

Usage: python benchmarks/profile_calls.py [--quick] [--calls N] [--rounds N] [--only CONFIG ...]
                                         [--validation] [--data-dir DIR] [--output FILE]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from statistics import median

import _models
from _harness import (BATCH_SIZE, RESULTS_DIR, _load, _now, _run_child, _write, child_main,
                      load_data, steps_per_epoch)

RESULTS = RESULTS_DIR / "call_profile.json"
WORKLOAD = "call_profile"


# --- the probe of the Trainer's loops ---------------------------------------------------

def attach_loop_probe():
    """Wraps each resident-array training loop a `Loops` creates; returns the list its
    events go to, or None when the engine's internals have moved (then only whole calls
    are timed)."""
    try:
        from customkeras.training.loops import Loops
        original = Loops._function
    except (ImportError, AttributeError):
        return None
    events = []

    def _function(self, key, body, signature, jit_compile):
        functions = getattr(self, "_functions", None)
        fresh = functions is not None and key not in functions
        function = original(self, key, body, signature, jit_compile)
        if (fresh and key[:2] == ("train", "arrays") and key in functions
                and not self.run_eagerly):
            function = functions[key] = _timed_loop(function, bool(jit_compile), events)
        return function

    Loops._function = _function
    return events


def _timed_loop(function, xla, events):
    traced = []

    def call(*args):
        start = time.perf_counter()
        trace = None
        if not traced:  # trace now, so that the first run is the run (and XLA's compile)
            function.get_concrete_function(*args)
            trace = time.perf_counter() - start
            traced.append(True)
        result = function(*args)
        steps = int(result[0])  # waits for the execution, as the controller does next
        events.append({"xla": xla, "start": start, "end": time.perf_counter(), "steps": steps,
                       "trace": trace})
        return result

    return call


def _loop_figures(events, xla, call_bounds):
    """Trace, first run and steady seconds per step of one loop, from its executions."""
    mine = [e for e in events if e["xla"] == xla]
    if not mine:
        return None
    first, later = mine[0], mine[1:]
    run = first["end"] - first["start"] - first["trace"]
    same = [e["end"] - e["start"] for e in later if e["steps"] == first["steps"]]
    # Executions of at least half the largest one's steps: not a pass's short remainder.
    most = max((e["steps"] for e in later), default=0)
    big = [e for e in later if 2 * e["steps"] >= most]
    per_step = (sum(e["end"] - e["start"] for e in big) / sum(e["steps"] for e in big)
                if big else None)
    steady = median(same) if same else (first["steps"] * per_step if per_step else None)
    first_call = next(i for i, (begin, end) in enumerate(call_bounds)
                      if begin <= first["start"] <= end)
    return {"first_call": first_call, "first_execution_steps": first["steps"],
            "trace_seconds": first["trace"], "first_run_seconds": run,
            "first_run_extra_seconds": None if steady is None else run - steady,
            "execution_seconds_per_step": per_step}


# --- the children -----------------------------------------------------------------------

def _data(settings, with_tensorflow=True):
    (x, y), validation, _ = load_data(settings, with_tensorflow)
    return x, y, (validation if settings.get("validation") else None)


def _call_figures(construct, bounds, steps):
    seconds = [end - begin for begin, end in bounds]
    steady = median(seconds[1:] or seconds)
    return {"steps_per_epoch": steps, "construct_seconds": construct,
            "call_seconds": [round(s, 4) for s in seconds], "steady_call_seconds": steady,
            "first_call_extra_seconds": seconds[0] - steady,
            "seconds_per_step": steady / steps, "total_seconds": construct + sum(seconds)}


def trainer_profile(settings, build, jit_compile):
    from customkeras.training import Trainer

    events = attach_loop_probe()
    x, y, validation = _data(settings)
    model = build()
    _models.set_random_seed(settings["seed"])
    start = time.perf_counter()
    trainer = Trainer(model, _models.LOSS, _models.nadam(), metrics=["accuracy"],
                      jit_compile=jit_compile)
    construct = time.perf_counter() - start
    bounds = []
    for epoch in range(settings["calls"]):
        begin = time.perf_counter()
        trainer.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=BATCH_SIZE,
                    validation_data=validation, seed=settings["seed"], verbose=0)
        bounds.append((begin, time.perf_counter()))
    result = _call_figures(construct, bounds, steps_per_epoch(len(x)))
    if not events:
        result["loop_probe"] = "unavailable: customkeras.training.loops.Loops._function moved"
        return result
    pre_step, parts = [], []
    for begin, end in bounds:  # each call: before its first execution, tracing, executions
        mine = [e for e in events if begin <= e["start"] <= end]
        pre_step.append(min(e["start"] for e in mine) - begin)
        trace = sum(e["trace"] or 0 for e in mine)
        run = sum(e["end"] - e["start"] for e in mine) - trace
        parts.append({"before_steps": round(pre_step[-1], 4), "trace": round(trace, 4),
                      "executions": round(run, 4), "number_of_executions": len(mine),
                      "rest": round(end - begin - pre_step[-1] - trace - run, 4)})
    result.update(pre_step_seconds=[round(s, 4) for s in pre_step], call_parts=parts,
                  setup_seconds=construct + pre_step[0],
                  loops={name: _loop_figures(events, xla, bounds)
                         for name, xla in (("plain", False), ("xla", True))})
    return result


def jax_profile(settings):
    """Keras `fit` on the JAX backend; JAX's monitoring events time its compilations."""
    import jax
    import keras

    phases = {"/jax/core/compile/jaxpr_trace_duration": "trace",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering",
              "/jax/core/compile/backend_compile_duration": "compile"}
    calls = [{}]

    def listen(event, duration_secs, **_):
        if event in phases:
            calls[-1][phases[event]] = calls[-1].get(phases[event], 0.0) + duration_secs

    jax.monitoring.register_event_duration_secs_listener(listen)
    x, y, validation = _data(settings, with_tensorflow=False)
    model = _models.mlp()
    _models.set_random_seed(settings["seed"])
    start = time.perf_counter()
    model.compile(_models.nadam(), _models.LOSS, metrics=["accuracy"], steps_per_execution=32)
    construct = time.perf_counter() - start
    bounds, before = [], calls.pop()
    for epoch in range(settings["calls"]):
        calls.append({})
        begin = time.perf_counter()
        model.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=BATCH_SIZE,
                  validation_data=validation, verbose=0)
        bounds.append((begin, time.perf_counter()))
    result = _call_figures(construct, bounds, steps_per_epoch(len(x)))
    result.update(backend=keras.backend.backend(), compile_before_fit=before,
                  compile_per_call=calls)
    return result


CONFIGS = {
    **{f"{name}_{label}": ("tensorflow", lambda s, b=build, j=jit: trainer_profile(s, b, j))
       for name, build in (("mlp", _models.mlp), ("cnn", _models.cnn))
       for label, jit in (("plain", False), ("xla", True), ("auto", "auto"))},
    "jax_mlp_spe32": ("jax", jax_profile),
}


def settings_for(config, args):
    settings = {"calls": args.calls, "validation": args.validation, "data_dir": args.data_dir,
                "seed": 0, "batch_size": BATCH_SIZE}
    if config.startswith("cnn"):
        settings["train_samples"] = 20_000
    if config == "cnn_xla":  # ~8x slower steps than plain on CPU: one steady call is enough
        settings["calls"] = min(args.calls, 2)
    if args.quick:
        settings.update(calls=min(settings["calls"], 3), train_samples=1024 if config.startswith(
            "cnn") else 4096, valid_samples=256)
    return settings


# --- the parent -------------------------------------------------------------------------

def _loop(result, name, key):
    return ((result.get("loops") or {}).get(name) or {}).get(key)


def _one_off(result, name):
    """A loop's trace plus its first run's extra (0 if it never ran)."""
    return (_loop(result, name, "trace_seconds") or 0) + (
        _loop(result, name, "first_run_extra_seconds") or 0)


def derive(configs):
    """Per model: set-up, the loops' one-off costs, p, x, C and the break-even steps.

    C from whole calls (the XLA path's first-call extra minus the plain path's) and,
    less exposed to the steps' noise, from the probe's parts (set-up, each loop's trace
    and first run: the XLA path also traces the plain loop for a smaller last batch).
    """
    models = {}
    for model in ("mlp", "cnn"):
        plain, xla = configs.get(f"{model}_plain"), configs.get(f"{model}_xla")
        if not plain or not xla or "unavailable" in plain or "unavailable" in xla:
            continue
        p, x = plain["seconds_per_step"], xla["seconds_per_step"]
        calls_c = xla["first_call_extra_seconds"] - plain["first_call_extra_seconds"]
        parts_c = (xla["setup_seconds"] - plain["setup_seconds"] + _one_off(xla, "xla")
                   + _one_off(xla, "plain") - _one_off(plain, "plain")
                   if "loops" in plain and "loops" in xla else None)
        models[model] = {
            "setup_seconds": plain.get("setup_seconds"),
            "trace_plain_seconds": _loop(plain, "plain", "trace_seconds"),
            "first_run_extra_plain_seconds": _loop(plain, "plain", "first_run_extra_seconds"),
            "trace_xla_seconds": _loop(xla, "xla", "trace_seconds"),
            "compile_xla_seconds": _loop(xla, "xla", "first_run_extra_seconds"),
            "plain_seconds_per_step": p, "xla_seconds_per_step": x,
            "xla_extra_one_off_seconds": calls_c, "xla_extra_one_off_parts_seconds": parts_c,
            "break_even_steps": calls_c / (p - x) if p > x else None,
            "break_even_steps_parts": parts_c / (p - x) if p > x and parts_c else None,
            "steps_per_epoch": plain["steps_per_epoch"],
            "totals": {label: _total(configs.get(f"{model}_{label}", {}),
                                     len(plain["call_seconds"]))
                       for label in ("plain", "xla", "auto")
                       if "total_seconds" in configs.get(f"{model}_{label}", {})}}
    return models


def _total(result, calls):
    """Construction and `calls` calls; calls not run are counted as steady ones."""
    missing = calls - len(result["call_seconds"])
    return result["total_seconds"] + max(missing, 0) * result["steady_call_seconds"]


def _shell(command):
    """A command's output, e.g. the commit measured and how many files in src/ differ."""
    return subprocess.run(command, shell=True, capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parent).stdout.split()


def _uptime():
    return " ".join(_shell("uptime"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few samples, 3 calls; results go to /tmp (or --output)")
    parser.add_argument("--calls", type=int, default=5, help="one-epoch calls (default 5)")
    parser.add_argument("--only", action="append", choices=sorted(CONFIGS), metavar="CONFIG")
    parser.add_argument("--rounds", type=int, default=1, help="default 1")
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", type=pathlib.Path, default=None)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main({WORKLOAD: CONFIGS}, *args.child, json.loads(args.settings))
        return
    output = args.output or (pathlib.Path("/tmp/quick-call_profile.json") if args.quick
                             else RESULTS)
    report = _load(output, args.quick)  # other settings' results are replaced
    entry = report["workloads"].setdefault(WORKLOAD, {"contenders": {}})
    load_start, uptime_start, started = os.getloadavg(), _uptime(), time.perf_counter()
    totals = {}
    for round_index in range(args.rounds):  # A B C ... A B C ...: a slow spell hits all alike
        for name in args.only or CONFIGS:
            backend, _ = CONFIGS[name]
            print(f"[profile] {name} (round {round_index + 1}) ...", file=sys.stderr, flush=True)
            load = os.getloadavg()
            result = _run_child(pathlib.Path(__file__), WORKLOAD, name, backend,
                                settings_for(name, args), args.timeout)
            result["load_average"] = [load, os.getloadavg()]  # before, after
            if "unavailable" in result:
                print(f"[profile]   unavailable: {result['unavailable']}", file=sys.stderr)
            totals.setdefault(name, []).append(result.get("total_seconds"))
            kept = entry["contenders"].get(name, {}) if round_index else {}
            if "total_seconds" not in kept or result.get("total_seconds", 1e9) < kept[
                    "total_seconds"]:  # a configuration keeps its fastest round, whole
                entry["contenders"][name] = dict(result, settings=settings_for(name, args))
            entry["contenders"][name]["round_totals"] = totals[name]
    run = dict(date=_now(), configs=list(args.only or CONFIGS), rounds=args.rounds,
               seconds=round(time.perf_counter() - started, 1),
               load_average_at_start=load_start, load_average_at_end=os.getloadavg(),
               uptime_at_start=uptime_start, uptime_at_end=_uptime(),
               engine=_shell("git rev-parse --short HEAD; git status --short src | wc -l"))
    # Runs of some configurations (--only) merge into the file: each run is listed.
    entry.setdefault("runs", []).append(run)
    entry.update(run, settings=settings_for("mlp", args), models=derive(entry["contenders"]))
    _write(output, report)
    print(f"[profile] written to {output}", file=sys.stderr)
    import report as report_module
    print(report_module.render_file(output))


if __name__ == "__main__":
    main()
