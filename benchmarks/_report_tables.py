"""Markdown tables for `report.py`: one renderer per workload, the targets, older layouts."""

from _report_calls import call_profile

LABELS = {
    "tf_fit": "Keras `fit`, TF, defaults",
    "tf_fit_spe32": "Keras `fit`, TF, `steps_per_execution=32`",
    "tf_fit_spe32_xla": "Keras `fit`, TF, spe=32 + `jit_compile=True`",
    "jax_fit": "Keras `fit`, JAX backend, defaults",
    "jax_fit_spe32": "Keras `fit`, JAX backend, spe=32",
    "jax_optax": "hand-written JAX + optax `lax.fori_loop`",
    "eager_loop": "the chapter's eager loop (13a as written)",
    "trainer": "`Trainer`",
    "trainer_no_xla": "`Trainer(jit_compile=False)`",
    "trainer_dataset": "`Trainer`, the tf.data pipeline",
    "trainer_arrays": "`Trainer`, resident arrays (no tf.data)",
    "trainer_stream": "`Trainer`, TFRecord shards (`stream_fashion_mnist`)",
}
WORKLOAD_LABELS = {
    "tf_data": {"tf_fit_spe32": "Keras `fit`, TF, spe=32, the tf.data pipeline",
                "tf_fit_spe32_xla": "Keras `fit`, TF, spe=32 + XLA, the tf.data pipeline",
                "tf_fit_spe32_stream": "Keras `fit`, TF, spe=32, TFRecord shards"},
    # XLA:CPU convolutions inside a while loop are slow: see _jax_loops.build.
    "cnn": {"jax_optax": "hand-written JAX + optax, a Python loop over a jitted step"},
}


def _number(value, digits=0):
    return f"{value:,.{digits}f}"


def _seconds(value):
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _label(name, workload_name=None):
    return WORKLOAD_LABELS.get(workload_name, {}).get(name, LABELS.get(name, f"`{name}`"))


def _header(title, workload, samples="train_samples"):
    settings = workload.get("settings", {})
    size = f", first {settings[samples]:,} images" if settings.get(samples) else ""
    rounds = workload.get("rounds", 1)
    rounds = f"{rounds} rounds, best of each" if rounds > 1 else "1 round"
    title = title.replace("EPOCHS", str(settings.get("epochs", "?")))
    stolen = [value for r in workload.get("contenders", {}).values()
              for value in r.get("rounds", {}).get("stolen_cpu_seconds",
                                                   [r.get("stolen_cpu_seconds")])
              if value is not None]
    stolen = (f"; CPU time stolen by the hypervisor, per contender: up to {max(stolen):.1f} s in a round"
              if stolen else "")
    return f"**{title}**{size} ({rounds}; {workload.get('date', '?')[:10]}{stolen}):"


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _table(columns, rows):
    return "\n".join([_row(columns), _row(["---"] * len(columns))] + [_row(r) for r in rows])


def _training_rows(workload, name_of_ours, columns, workload_name=None):
    """Rows of a training workload; `columns` are (header, function(result) -> cell)."""
    contenders = workload["contenders"]
    ours = contenders.get(name_of_ours, {})
    rows = []
    for name, result in contenders.items():
        if "unavailable" in result:
            rows.append([_label(name, workload_name), f"unavailable: {result['unavailable']}"]
                        + ["–"] * (len(columns) - 1))
            continue
        cells = [cell(result) for _, cell in columns]
        if "steady_steps_per_s" in ours and name != name_of_ours:
            cells[-1] = f"{ours['steady_steps_per_s'] / result['steady_steps_per_s']:.2f}×"
        rows.append([_label(name, workload_name)] + cells)
    headers = ["contender"] + [header for header, _ in columns]
    return _table(headers, rows)


def _wall(result):
    if "extrapolated_wall_seconds" in result:
        return f"~{_seconds(result['extrapolated_wall_seconds'])} (extrapolated)"
    return _seconds(result["wall_seconds"])


def _accuracy(result):
    return f"{result['test_accuracy']:.4f}" if "test_accuracy" in result else "–"


_WALL = ("wall, compilation incl.", _wall)
_STEADY = ("steady steps/s", lambda r: _number(r["steady_steps_per_s"]))
_ACCURACY = ("test accuracy", _accuracy)
_RSS = ("peak RSS", lambda r: f"{_number(r['peak_rss_mb'])} MB")
_VERSUS = ("`Trainer` steady ÷ this", lambda r: "–")


def main_job(workload):
    return _header("The main job: exercise 13a's MLP, EPOCHS epochs with validation, batch 32, "
                   "Nadam(1e-2), on Fashion-MNIST", workload) + "\n\n" + _training_rows(
        workload, "trainer", [_WALL, _STEADY, _ACCURACY, _RSS, _VERSUS])


def epoch_calls(workload):
    calls = workload.get("settings", {}).get("epochs", 5)
    return _header(f"One-epoch calls: `fit(epochs=e + 1, initial_epoch=e)` {calls} times",
                   workload) + "\n\n" + _training_rows(workload, "trainer", [
                       (f"wall of the {calls} calls", _wall),
                       ("steady steps/s (calls after the first)", _STEADY[1]), _ACCURACY, _VERSUS])


def evaluate_predict(workload):
    def part(name, key):
        def cell(result):
            figures = result.get(name, {})
            if "unavailable" in figures:
                return "unavailable" if key != "first_call_seconds" else (
                    f"unavailable: {figures['unavailable']}")
            return _seconds(figures[key]) if key in figures else "–"
        return cell

    columns = [("`evaluate`, first call", part("evaluate", "first_call_seconds")),
               ("`evaluate`, later calls", part("evaluate", "steady_seconds")),
               ("`predict`, first call", part("predict", "first_call_seconds")),
               ("`predict`, later calls", part("predict", "steady_seconds"))]
    return _header("`evaluate` and `predict` on the test set, batch 32", workload,
                   "test_samples") + "\n\n" + _training_rows(workload, "trainer", columns)


def cnn(workload):
    return _header("A small CNN (Conv 32 -> pool -> Conv 64 -> pool -> Dense 10), EPOCHS epochs",
                   workload) + "\n\n" + _training_rows(
        workload, "trainer", [_WALL, _STEADY, _ACCURACY, _RSS, _VERSUS], "cnn")


def custom_step(workload):
    return _header("The Keras guide's custom `train_step` (the MLP as a `keras.Model` subclass), EPOCHS epochs",
                   workload) + "\n\n" + _training_rows(
        workload, "trainer", [_WALL, _STEADY, _ACCURACY, _RSS, _VERSUS])


def gan(workload):
    return _header("A GAN step: two models, two optimizers (the guide's GAN, the book's "
                   "Fashion-MNIST dense models), EPOCHS epochs", workload) + "\n\n" + _training_rows(
        workload, "trainer", [_WALL, _STEADY, _RSS, _VERSUS])


def tf_data(workload):
    return _header("The same tf.data pipeline (shuffle, batch 32, prefetch) through each "
                   "loop, the MLP, EPOCHS epochs", workload) + "\n\n" + _training_rows(
        workload, "trainer_dataset", [_WALL, _STEADY, _ACCURACY, _RSS, _VERSUS], "tf_data")


WORKLOADS = {"main": main_job, "epoch_calls": epoch_calls, "evaluate_predict": evaluate_predict,
             "cnn": cnn, "custom_step": custom_step, "gan": gan, "tf_data": tf_data,
             "call_profile": call_profile}  # benchmarks/profile_calls.py


def _figure(workloads, workload, name, key):
    result = workloads.get(workload, {}).get("contenders", {}).get(name, {})
    return result.get(key)


def _steady(workloads, workload, ours, peers, need, text):
    mine = _figure(workloads, workload, ours, "steady_steps_per_s")
    theirs = [(_figure(workloads, workload, p, "steady_steps_per_s"), p) for p in peers]
    theirs = [t for t in theirs if t[0]]
    if not mine or not theirs:
        return workload, text, None, need
    best, peer = max(theirs)
    return workload, text, (mine / best, f"{_number(mine)} vs {_number(best)} steps/s of {LABELS[peer]}"), need


def _wall_ratio(workloads, workload, ours, peers, need, text):
    mine = _figure(workloads, workload, ours, "wall_seconds")
    theirs = [(_figure(workloads, workload, p, "wall_seconds"), p) for p in peers]
    theirs = [t for t in theirs if t[0]]
    if not mine or not theirs:
        return workload, text, None, need
    best, peer = min(theirs)
    return workload, text, (best / mine, f"{_seconds(mine)} vs {_seconds(best)} of {LABELS[peer]}"), need


def targets(workloads):
    """The issues' targets as measured ratios of one run (ours ÷ peer; >= need is met)."""
    rss_ours = _figure(workloads, "main", "trainer", "peak_rss_mb")
    rss_fit = _figure(workloads, "main", "tf_fit", "peak_rss_mb")
    jax = ["jax_fit", "jax_fit_spe32"]
    checks = [
        _steady(workloads, "main", "trainer", ["jax_fit_spe32"], 1.2,
                "main job, steady: >= 1.2× Keras-on-JAX `fit(spe=32)`"),
        _wall_ratio(workloads, "main", "trainer", ["jax_fit_spe32"], 1.0,
                    "main job, wall time: <= Keras-on-JAX `fit(spe=32)`'s (their wall ÷ ours)"),
        _steady(workloads, "main", "trainer", ["jax_optax"], 0.95,
                "main job, default step: at the hand-written JAX loop's speed (>= 0.95×)"),
        _steady(workloads, "epoch_calls", "trainer", ["tf_fit_spe32"], 2.0,
                "one-epoch calls, steady: >= 2× TF `fit(spe=32)`"),
        _steady(workloads, "epoch_calls", "trainer", jax, 1.0,
                "one-epoch calls, steady: >= Keras-on-JAX `fit` (best setting)"),
        _wall_ratio(workloads, "epoch_calls", "trainer", jax, 1.0,
                    "one-epoch calls, wall of all calls: <= Keras-on-JAX `fit`'s (best setting)"),
        _steady(workloads, "cnn", "trainer", ["tf_fit_spe32_xla"], 1.0,
                "CNN, steady: >= TF `fit(spe=32, jit_compile=True)`"),
        _steady(workloads, "cnn", "trainer", jax, 1.0,
                "CNN, steady: >= Keras-on-JAX `fit` (best setting)"),
        ("main", "main job, peak RSS: <= TF Keras `fit`'s + 10 % (theirs × 1.1 ÷ ours)",
         (rss_fit * 1.1 / rss_ours, f"{_number(rss_ours)} vs {_number(rss_fit)} MB of {LABELS['tf_fit']}")
         if rss_ours and rss_fit else None, 1.0),
        _steady(workloads, "custom_step", "trainer", ["tf_fit_spe32"], 2.0,
                "custom `train_step`: >= 2× `fit(spe=32)` on the same model"),
        _steady(workloads, "gan", "trainer", ["tf_fit_spe32"], 2.0,
                "GAN step: >= 2× `fit(spe=32)` on the same model"),
        _steady(workloads, "tf_data", "trainer_dataset", ["tf_fit_spe32", "tf_fit_spe32_xla"], 2.0,
                "tf.data pipeline: >= 2× the better of TF `fit(spe=32)` and `fit(spe=32, XLA)`"),
    ]
    rows = []
    for workload, text, measured, need in checks:
        if workload not in workloads:
            continue
        if measured is None:
            rows.append([text, "not measured (a contender is unavailable or not run)", "–"])
            continue
        ratio, detail = measured
        rows.append([text, f"{ratio:.2f}×: {detail}", "met" if ratio >= need else "**missed**"])
    if not rows:
        return ""
    return "**Targets** (ratios within this run):\n\n" + _table(["target", "measured", ""], rows)


def legacy(report):
    """Results files written before the side-by-side layout (schema 1)."""
    results = report.get("results", {})
    if "32" in results:  # bench_distribute.py
        at32 = results["32"]
        speedups = [results[b][f"{kind}_slicing"]["steps_per_s"] / results[b][f"{kind}_dataset"]["steps_per_s"]
                    for b in results for kind in ("mirrored_2", "workers_2")
                    if f"{kind}_slicing" in results[b] and f"{kind}_dataset" in results[b]]
        text = (f"steps/s at batch 32 on {report['machine']['cpus']} CPU cores: one device "
                f"{_number(at32['one_device']['steps_per_s'])} "
                f"({_number(at32['one_device_xla']['steps_per_s'])} with XLA, which a strategy "
                f"gives up); two mirrored logical CPUs {_number(at32['mirrored_2']['steps_per_s'])}; "
                f"two worker processes {_number(at32['workers_2']['steps_per_s'])}.")
        if speedups:
            text += (f" Batches are sliced in-graph from the resident data: that trained "
                     f"{min(speedups):.1f}–{max(speedups):.1f}× faster than "
                     f"`experimental_distribute_dataset` on the same batches.")
        return text
    rows = []
    for name, result in results.items():
        accuracy = result.get("test_accuracy")
        rows.append([{"fit": LABELS["tf_fit"], "fit_spe32": LABELS["tf_fit_spe32"]}.get(
            name, LABELS.get(name, name)), _number(result["steps_per_s"]),
            "–" if accuracy is None else f"{accuracy:.4f}", f"{_number(result['peak_rss_mb'])} MB"])
    return (f"Measured {report.get('date', '?')[:10]} (Fashion-MNIST MLP, batch 32, Nadam):\n\n"
            + _table(["contender", "steps/s (steady)", "test accuracy", "peak RSS"], rows))
