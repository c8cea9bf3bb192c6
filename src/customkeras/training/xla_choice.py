"""The XLA policy: which of a `Trainer`'s loops run XLA-compiled.

XLA and plain steps compute different floats, and on a CPU TensorFlow's seeded random
ops (`Dropout`, `keras.random` with a `SeedGenerator`) draw other numbers under XLA.
So the choice changes a run's numbers, and it is made only from facts that a run cut
into several calls or processes, resumed or extended, sees the same way: the explicit
`jit_compile`, whether a strategy or eager execution rules XLA out, the device, and
the ops of the step. Never from a clock, the machine's load, the steps run so far or
planned: the same data, seed and configuration give the same bits.

`jit_compile=True` or `False` decides alone. `"auto"` decides once per loop kind
("train", "test", "predict"), before the kind's first step:

* no XLA under a strategy (the loops run `strategy.run`, which XLA cannot wrap) or
  eagerly;
* XLA on a GPU or TPU;
* on a CPU, XLA unless the step has convolutions: XLA's CPU convolutions ran the
  benchmarks' CNN steps several times slower (`benchmarks/results/call_profile.json`),
  while dense steps ran several times faster;
* a step that XLA cannot compile runs plain, with a warning (the controller catches
  the error of the kind's first XLA execution, which compiles before it runs, so no
  step ran with XLA). That, too, is a property of the step's ops.
"""

import enum
import re

import tensorflow as tf


class XlaMode(enum.Enum):
    """Where XLA compiles an execution of a loop: the one name for it in the engine.

    * `NONE`: nothing is XLA-compiled;
    * `PER_STEP`: each step is compiled alone, the loop around it is plain (a loop
      that reads an iterator, or collects outputs in a `TensorArray`, which XLA
      cannot compile or returns empty); a feed may compile a group of equal batches
      as one (super-batches);
    * `WHOLE_LOOP`: the `while` loop and its steps are compiled as one (resident
      arrays, full batches of one static size).

    The policy below decides whether a pass uses XLA at all; the feed
    (`sources.feeds`) says which mode each of its steps runs in.
    """

    NONE = "none"
    PER_STEP = "per step"
    WHOLE_LOOP = "whole loop"

# TensorFlow op types of convolutions (forward and gradients): "Conv2D", "Conv3D",
# "Conv" (TF >= 2.16's N-d op), "Conv2DBackpropInput", "DepthwiseConv2dNative", ...
_CONVOLUTION_OP = re.compile(r"^(Conv|DepthwiseConv)")

# What TensorFlow says when XLA cannot compile a graph (an op without an XLA kernel).
_XLA_FAILURE = re.compile(
    r"XLA|xla|jit_compile|Detected unsupported operations|Compilation failure|"
    r"must be a compile-time constant")


def is_xla_compile_error(error):
    """Whether `error` says that XLA could not compile a graph."""
    return (isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError))
            and bool(_XLA_FAILURE.search(str(error))))


def convolution_ops(op_types):
    """The op types among `op_types` that are convolutions, sorted."""
    return sorted(op for op in op_types if _CONVOLUTION_OP.match(op))


def on_accelerator(model=None):
    """Whether the steps run on a GPU or TPU: where `model`'s variables are (a model
    pinned to the CPU on a GPU machine runs there), or, without variables, whether
    TensorFlow sees one (where it places new ones)."""
    devices = [getattr(v, "device", "") or "" for v in getattr(model, "variables", ())[:1]]
    if devices and devices[0]:
        device = devices[0].upper()
        return ":GPU:" in device or ":TPU:" in device
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


class XlaChoice:
    """The XLA decisions of one `Trainer`: one per loop kind, made once.

    Args:
        jit_compile: `True`, `False` or `"auto"`.
        allowed: False under a strategy (XLA cannot wrap `strategy.run`) or eagerly.
        model: the model, whose variables' device tells where the steps run.
            Defaults to None (the devices TensorFlow sees).

    Attributes:
        failed: the loop kinds whose step XLA could not compile (they run plain).
        decisions: `{kind: (xla, reason)}` of the kinds decided so far, for the docs
            and diagnostics (`Trainer.xla_decisions`).
    """

    def __init__(self, jit_compile, allowed, model=None):
        self.jit_compile = jit_compile
        self.allowed = allowed
        self.model = model
        self.failed = set()
        self.decisions = {}

    @property
    def auto(self):
        return self.jit_compile == "auto"

    def for_pass(self, kind, op_types):
        """Whether a pass of `kind` runs with XLA; `op_types()` returns the op types
        of the kind's step (called once, under `"auto"` on a CPU only)."""
        if kind not in self.decisions:
            self.decisions[kind] = self._decide(op_types)
        return self.decisions[kind][0] and kind not in self.failed

    def _decide(self, op_types):
        if not self.allowed:
            return False, "XLA is not used under a strategy or eagerly"
        if not self.auto:
            return bool(self.jit_compile), f"jit_compile={self.jit_compile}"
        if on_accelerator(self.model):
            return True, "auto: a GPU or TPU"
        convolutions = convolution_ops(op_types())
        if convolutions:
            return False, f"auto: convolutions on a CPU ({', '.join(convolutions)})"
        return True, "auto: a CPU, no convolutions"

    def compile_failed(self, kind):
        """Records that XLA could not compile `kind`'s step; it runs plain from now."""
        self.failed.add(kind)
        self.decisions[kind] = (False, "auto: XLA could not compile the step")
