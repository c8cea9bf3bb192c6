"""The benchmarks on one GPU: `Trainer` beside Keras `fit` on TensorFlow and on JAX.

Every other figure in benchmarks/results/ was measured on a 2-core CPU; this script is the
accelerator's side, run as `make bench-gpu` on a machine with one NVIDIA GPU (the first
one, unless CUDA_VISIBLE_DEVICES says otherwise). It needs no network: Fashion-MNIST from
`CUSTOMKERAS_DATA_DIR` / `--data-dir`, else random data of the same shapes (the results
say which), and synthetic images for the ResNet. It stops within `--budget` seconds
(default 480, the 8 minutes it is allowed): contenders it has no time left for are
recorded as not run.

Workloads, each in rounds of one process per contender (`_harness.py`):

* main      exercise 13a's MLP on Fashion-MNIST, batch 32, Nadam(1e-2), with validation
            (bench_training.py's main job): a dispatch-bound step;
* resnet    a small ResNet-style CNN (`_models.resnet`) on synthetic 32x32x3 images,
            batch 256: a compute-bound step, where the GPU's arithmetic takes the time;
* cnn       bench_training.py's small CNN on the first 20,000 images, batch 32;
* gan       the guide's GAN step (bench_custom_steps.py), two models, two optimizers;
* tf_data   bench_input.py's tf.data pipeline (shuffle, batch 32, prefetch) into the MLP.

Contenders: Keras `fit` on TensorFlow with its defaults (`tf_fit`), with
`steps_per_execution=32` (`tf_fit_spe32`) and that plus `jit_compile=True`
(`tf_fit_spe32_xla`); Keras `fit` on the JAX backend with `steps_per_execution=32`
(`jax_fit_spe32`, not for the GAN, whose step is written with `tf.GradientTape`); and
`Trainer` with its defaults (`jit_compile="auto"` decides XLA from the device: each
result records the device it ran on, the Trainer's its XLA decisions, Keras's what its
`jit_compile="auto"` resolved to, XLA on a GPU); for the convolutional workloads also
`Trainer(jit_compile=False)` (`trainer_no_xla`), to measure the XLA policy there. A
contender whose backend sees no GPU fails (its row says why) rather than measuring a CPU.

`--dry-run` runs the whole script on the CPU (GPUs hidden) at tiny sizes, each backend's
contenders sharing a process, in under 2 minutes: to know that it works before a GPU is
at hand. Its results go to a temporary file, never to benchmarks/results/, and say
"dry run"; its figures measure nothing.

Results: benchmarks/results/gpu.json (ratios `Trainer` steady steps/s ÷ each peer's, per
workload, under "ratios"); `python benchmarks/report.py` renders the README's table.

Usage: python benchmarks/bench_gpu.py [--dry-run] [--budget SECONDS] [--rounds N]
                                      [--workload W ...] [--only CONTENDER ...]
                                      [--data-dir DIR] [--output FILE]
"""

import functools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import _harness
import _models
from _harness import RESULTS_DIR, SEED, run_benchmark
from _report_gpu import ratios
from bench_custom_steps import fit_gan, trainer_gan
from bench_input import fit_dataset, trainer_dataset
from bench_training import keras_train, trainer_train

RESULTS = RESULTS_DIR / "gpu.json"
BUDGET_SECONDS = 480
BUDGET_RESERVE = 10  # for writing the results and rendering the tables after the last child
DRY_RUN_OUTPUT = pathlib.Path(tempfile.gettempdir()) / "customkeras-bench-gpu-dry-run.json"

# Per workload: the GPU run's settings, then the dry run's (tiny, for a 2-core CPU).
# Two epochs at least: steady steps/s is the median epoch after the first.
SETTINGS = {
    "main": ({"epochs": 5, "validation": True},
             {"epochs": 2, "validation": True, "train_samples": 256, "valid_samples": 64,
              "test_samples": 64}),
    "resnet": ({"epochs": 3, "validation": False, "train_samples": 10_240,
                "test_samples": 2_560, "batch_size": 256, "image_size": 32, "width": 32,
                "blocks": 2, "stages": 3},
               {"epochs": 2, "validation": False, "train_samples": 32, "test_samples": 16,
                "batch_size": 8, "image_size": 8, "width": 4, "blocks": 1, "stages": 2}),
    "cnn": ({"epochs": 2, "validation": False, "train_samples": 20_000},
            {"epochs": 2, "validation": False, "train_samples": 128, "test_samples": 64}),
    "gan": ({"epochs": 2, "validation": False, "train_samples": 20_000},
            {"epochs": 2, "validation": False, "train_samples": 128}),
    "tf_data": ({"epochs": 3, "validation": False},
                {"epochs": 2, "validation": False, "train_samples": 256,
                 "test_samples": 64}),
}


def settings_for(workload, quick):
    """The workload's settings: the GPU run's, or the dry run's (`--dry-run` sets the
    harness's `quick`)."""
    gpu, dry = SETTINGS[workload]
    return dict(dry if quick else gpu, require_gpu=not quick)


# --- what each contender runs ---------------------------------------------------------

def device():
    """The device this process's Keras backend computes on: "GPU: <name>" or "CPU"."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        first = jax.devices()[0]
        return f"GPU: {first.device_kind}" if first.platform == "gpu" else first.platform.upper()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return "GPU: " + tf.config.experimental.get_device_details(gpus[0]).get("device_name",
                                                                              gpus[0].name)


def on_device(function):
    """`function(settings)`, refused where the GPU run's backend sees no GPU, its result
    saying which device it ran on."""

    @functools.wraps(function)
    def run(settings):
        where = device()
        if settings.get("require_gpu") and not where.startswith("GPU"):
            import keras

            backend = keras.backend.backend()
            fix = ("install jax with CUDA (pip install -e '.[gpu]': jax[cuda12])"
                   if backend == "jax" else "install tensorflow[and-cuda] (.[gpu])")
            raise RuntimeError(f"Keras on {backend} sees no GPU (it would compute on the "
                               f"{where}): {fix}")
        result = function(settings)
        result["device"] = where
        return result

    return run


def _image_shape(settings):
    return (settings["image_size"], settings["image_size"], 3)


def synthetic_images(settings, tensorflow=True):
    """Random RGB images (32x32x3 on the GPU) and 10 random classes: the ResNet's data
    (its speed does not depend on the values). Arrays made whole, not sliced (aligned
    for TensorFlow)."""
    import numpy as np

    size = settings["image_size"]
    _harness._data_source = f"synthetic {size}x{size}x3 images"
    rng = np.random.default_rng(SEED)

    def split(n):
        return rng.random((n, *_image_shape(settings)), dtype=np.float32), rng.integers(0, 10, n)

    return split(settings["train_samples"]), None, split(settings["test_samples"])


def _resnet(settings):
    return functools.partial(_models.resnet, settings["width"], settings["blocks"],
                             _image_shape(settings), stages=settings["stages"])


def _fit(workload, settings, steps_per_execution, jit_compile):
    """Keras `fit` of `workload` on this process's backend."""
    if workload == "main":
        return keras_train(settings, steps_per_execution, jit_compile)
    if workload == "cnn":
        return keras_train(settings, steps_per_execution, jit_compile, build=_models.cnn)
    if workload == "resnet":
        return keras_train(settings, steps_per_execution, jit_compile, build=_resnet(settings),
                           load=synthetic_images, batch_size=settings["batch_size"])
    if workload == "gan":
        return fit_gan(settings, steps_per_execution, jit_compile)
    _keep_tensorflow_off_the_gpu()
    return fit_dataset(settings, jit_compile, steps_per_execution=steps_per_execution)


def _keep_tensorflow_off_the_gpu():
    """In a Keras-on-JAX process, TensorFlow only runs the tf.data pipeline: it must not
    take the GPU's memory, which JAX holds (Keras's advice for tf.data under JAX)."""
    import keras

    if keras.backend.backend() != "jax":
        return
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # TensorFlow already started: a dry run's shared process, on the CPU anyway


def _trainer(workload, settings, jit_compile="auto"):
    if workload == "main":
        return trainer_train(settings)
    if workload == "cnn":
        return trainer_train(settings, _models.cnn, jit_compile=jit_compile)
    if workload == "resnet":
        return trainer_train(settings, _resnet(settings), synthetic_images,
                             settings["batch_size"], jit_compile)
    if workload == "gan":
        return trainer_gan(settings)
    return trainer_dataset(settings)


CONVOLUTIONAL = ("resnet", "cnn")
PEERS = {
    "tf_fit": ("tensorflow", 1, "auto"),
    "tf_fit_spe32": ("tensorflow", 32, "auto"),
    "tf_fit_spe32_xla": ("tensorflow", 32, True),
    "jax_fit_spe32": ("jax", 32, "auto"),
}


def _contenders(workload):
    peers = {name: (backend, on_device(functools.partial(_fit_peer, workload, spe, jit)))
             for name, (backend, spe, jit) in PEERS.items()
             if not (workload == "gan" and backend == "jax")}
    ours = {"trainer": ("tensorflow", on_device(functools.partial(_trainer, workload)))}
    if workload in CONVOLUTIONAL:
        # The engine's XLA policy for convolutions, measured where it runs: "auto" is XLA
        # on a GPU (plain on a CPU, where XLA's convolutions were slow); this is without.
        ours["trainer_no_xla"] = ("tensorflow", on_device(
            functools.partial(_trainer, workload, jit_compile=False)))
    return {**peers, **ours}


def _fit_peer(workload, steps_per_execution, jit_compile, settings):
    return _fit(workload, settings, steps_per_execution, jit_compile)


CONTENDERS = {workload: _contenders(workload) for workload in SETTINGS}


# --- the parent: a GPU, or a dry run ----------------------------------------------------

def add_options(parser):
    parser.add_argument("--dry-run", action="store_true",
                        help="run everything on the CPU (GPUs hidden) at tiny sizes, each "
                             "backend's contenders in one process, on random data unless "
                             "--data-dir, results to a temporary file (default "
                             f"{DRY_RUN_OUTPUT}): a check that the script works, not a "
                             "measurement")


def _given(option):
    return any(arg == option or arg.startswith(option + "=") for arg in sys.argv[1:])


def _probe(backend, code):
    """What `code` prints (JSON) in a fresh process of `backend`, or None if it fails:
    the parent itself imports neither TensorFlow nor JAX (nor takes GPU memory)."""
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=environment, timeout=300)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


_TF_GPUS = ("import json, tensorflow as tf; print(json.dumps([tf.config.experimental."
            "get_device_details(d).get('device_name', d.name) for d in "
            "tf.config.list_physical_devices('GPU')]))")
_JAX_GPUS = ("import json, jax; print(json.dumps([d.device_kind for d in jax.devices() "
             "if d.platform == 'gpu']))")


def gpus():
    """`{"tensorflow": [names], "jax": [names]}` of the GPUs each framework sees."""
    return {"tensorflow": _probe("tensorflow", _TF_GPUS) or [],
            "jax": _probe("jax", _JAX_GPUS) or []}


def prepare(args):
    """Sets up a dry run (CPU, tiny, temporary file), or checks that there is a GPU."""
    started = time.perf_counter()
    if args.dry_run:
        if args.output == RESULTS:
            args.output = DRY_RUN_OUTPUT
        elif args.output.resolve().parent == RESULTS_DIR.resolve():
            sys.exit(f"bench_gpu.py: --dry-run writes no results; --output {args.output} is "
                     f"in {RESULTS_DIR}: give a file elsewhere (default {DRY_RUN_OUTPUT}).")
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the children run on the CPU
        if args.data_dir is None:  # random data: no time spent reading and checking files
            os.environ.pop("CUSTOMKERAS_DATA_DIR", None)
        # Its figures measure nothing, so XLA need not optimise the code it compiles: the
        # CPU compiles of the XLA contenders are most of a tiny run's time.
        os.environ["XLA_FLAGS"] = " ".join(filter(None, [
            os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0",
            "--xla_llvm_disable_expensive_passes=true"]))
        args.quick = args.shared_processes = True
        if not _given("--rounds"):
            args.rounds = 1
        return
    # One GPU: the first, unless the user chose (a strategy-free Trainer and fit use one).
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    seen = gpus()
    if not seen["tensorflow"]:
        sys.exit("bench_gpu.py: TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') "
                 "is empty), and this benchmark measures one. On a machine with an NVIDIA GPU "
                 "and its driver (nvidia-smi works), install the CUDA builds once with "
                 "'make install-gpu' (pip install -e '.[bench,gpu]': tensorflow[and-cuda], "
                 "jax[cuda12]). To check the script without a GPU: "
                 "make bench-gpu ARGS=--dry-run (tiny sizes on the CPU; figures that "
                 "measure nothing).")
    if not seen["jax"]:
        print("[bench] JAX sees no GPU: the Keras-on-JAX rows will say so (pip install -e "
              "'.[gpu]' installs jax[cuda12])", file=sys.stderr)
    print(f"[bench] GPU: {seen['tensorflow'][0]} (TensorFlow), "
          f"{(seen['jax'] or ['none'])[0]} (JAX)", file=sys.stderr)
    if args.budget is None:  # what is left of the 8 minutes after these probes
        args.budget = BUDGET_SECONDS - (time.perf_counter() - started) - BUDGET_RESERVE
    if not _given("--rounds"):
        args.rounds = 1  # two rounds of everything would not fit in 8 minutes


def add_ratios(path, dry_run):
    """Adds `Trainer` ÷ each peer (steady steps/s) per workload, and the dry-run flag,
    to the results file."""
    report = json.loads(path.read_text())
    report["dry_run"] = dry_run
    report["ratios"] = {name: ratios(workload) for name, workload in report["workloads"].items()}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    temporary.replace(path)


def main():
    parent = {}

    def prepare_and_remember(args):
        prepare(args)
        parent.update(output=args.output, dry_run=args.dry_run)

    run_benchmark(pathlib.Path(__file__), __doc__.split("\n")[0], CONTENDERS, settings_for,
                  RESULTS, add_options=add_options, prepare=prepare_and_remember)
    if parent:  # not a child process
        add_ratios(parent["output"], parent["dry_run"])
        print(f"[bench] ratios added to {parent['output']}", file=sys.stderr)


if __name__ == "__main__":
    main()
