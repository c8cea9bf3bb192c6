"""Markdown for `bench_gpu.py`'s results (benchmarks/results/gpu.json), for `report.py`."""

import math

import _report_tables as tables

OURS = "trainer"
PEERS = ("tf_fit", "tf_fit_spe32", "tf_fit_spe32_xla", "jax_fit_spe32", "trainer_no_xla")
TITLES = {
    "main": "the main job: exercise 13a's MLP, EPOCHS epochs with validation, batch 32, "
            "on Fashion-MNIST",
    "resnet": "a small ResNet-style CNN on synthetic SIZExSIZEx3 images, batch BATCH, EPOCHS "
              "epochs (compute-bound)",
    "cnn": "the small CNN (Conv 32 -> pool -> Conv 64 -> pool -> Dense 10), EPOCHS epochs",
    "gan": "the guide's GAN step (two models, two optimizers), EPOCHS epochs",
    "tf_data": "a tf.data pipeline (shuffle, batch 32, prefetch) into the MLP, EPOCHS epochs",
}
NO_FIGURES = ("No GPU figures yet: every figure above was measured on a 2-core CPU. "
              "`make bench-gpu` on a machine with one NVIDIA GPU (after `make install-gpu`) "
              "measures these workloads there and writes `benchmarks/results/gpu.json`; "
              "`make bench-gpu ARGS=--dry-run` checks the script on a CPU.")


def ratios(workload):
    """`{peer: Trainer's steady steps/s ÷ the peer's}` for the peers that ran."""
    contenders = workload.get("contenders", {})
    ours = contenders.get(OURS, {}).get("steady_steps_per_s")
    result = {}
    for name, figures in contenders.items():
        theirs = figures.get("steady_steps_per_s")
        if name != OURS and ours and theirs:
            result[name] = ours / theirs
    return result


def _title(name, workload):
    settings = workload.get("settings", {})
    title = TITLES.get(name, name)
    for key, placeholder in (("epochs", "EPOCHS"), ("image_size", "SIZE"),
                             ("batch_size", "BATCH")):
        title = title.replace(placeholder, str(settings.get(key, "?")))
    return title


def _devices(report):
    return sorted({result["device"] for workload in report["workloads"].values()
                   for result in workload.get("contenders", {}).values() if "device" in result})


def _ratio(value):
    return f"{value:.2f}×" if value is not None and math.isfinite(value) else "–"


def _summary(report):
    columns = ["workload", "`Trainer` steady steps/s"] + [
        f"÷ {tables.LABELS[peer]}" for peer in PEERS] + ["`Trainer`'s XLA (train loop)"]
    rows = []
    for name, workload in report["workloads"].items():
        ours = workload.get("contenders", {}).get(OURS, {})
        steady = ours.get("steady_steps_per_s")
        measured = ratios(workload)
        title = _title(name, workload)
        rows.append([title, tables._number(steady) if steady else
                     ours.get("unavailable", "not run")[:80]]
                    + [_ratio(measured.get(peer)) if peer in workload.get("contenders", {})
                       else "n/a" for peer in PEERS]
                    + [ours.get("xla", {}).get("train", "–")])
    return tables._table(columns, rows)


def _xla(result):
    if "jit_compile" in result:  # Keras: what `jit_compile` was, or resolved to
        return "yes" if result["jit_compile"] else "no"
    reason = result.get("xla", {}).get("train")
    return reason or "–"


def _details(name, workload):
    device = ("device", lambda result: result.get("device", "?"))
    xla = ("XLA", _xla)
    title = _title(name, workload)
    return tables._header(title[0].upper() + title[1:], workload) + "\n\n" + tables._training_rows(
        workload, OURS, [tables._WALL, tables._STEADY, device, xla, tables._VERSUS])


def render(report):
    """The GPU run's tables: a summary of ratios, then each workload's figures."""
    devices = _devices(report)
    if report.get("quick") or report.get("dry_run"):
        head = ("**Dry run (`--dry-run`): the script on the CPU at tiny sizes, each backend's "
                "contenders in one process. These figures measure nothing.**")
    else:
        head = (f"**On one GPU** ({', '.join(devices) or 'no device recorded'}; "
                f"{report.get('date', '?')[:10]}): `Trainer` steady steps/s ÷ each peer's, "
                "in one run (n/a: the GAN's step is written with `tf.GradientTape`, "
                "TensorFlow only).")
        off = sorted({f"{name} / {contender}" for name, workload in report["workloads"].items()
                      for contender, result in workload.get("contenders", {}).items()
                      if "device" in result and not result["device"].startswith("GPU")})
        if off:
            head += f"\n\n**Not on a GPU, so not comparable:** {', '.join(off)}."
    parts = [head, _summary(report)]
    parts += [_details(name, workload) for name, workload in report["workloads"].items()]
    return "\n\n".join(parts)


def readme_block(report):
    """The README's GPU block: the figures of a GPU run, else (no file: None, or a dry
    run) that there are none yet."""
    if report is None:
        return NO_FIGURES
    if report.get("quick") or report.get("dry_run"):
        return NO_FIGURES + " (`benchmarks/results/gpu.json` holds a dry run: not figures.)"
    return render(report)
