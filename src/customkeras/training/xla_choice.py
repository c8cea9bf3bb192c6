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

The device is a fact of the machine, not of the run: a run started on a GPU and resumed
on a CPU would switch XLA, and its numbers, halfway. So `"auto"`'s decisions travel with
the run's position (`TrainingState.state_dict()["xla"]`, saved by every checkpoint that
saves a position, `EpochCheckpoint`'s and `BackupAndRestore`'s), and a resume adopts them
(`XlaChoice.adopt`) instead of deciding anew: the numbers follow the run, not the
machine. Where this machine would have decided otherwise, it says so once per kind
(`XlaDecisionWarning`). Only XLA being impossible here (a strategy, eager execution, a
step XLA cannot compile) overrides a recorded `True`, with that warning. An explicit
`jit_compile=True` or `False` still decides alone: a recorded decision is not read, so
resuming with an explicit value is choosing other numbers, silently, as passing it is.
"""

import enum
import re
import warnings

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


class XlaDecisionWarning(UserWarning):
    """A resumed run keeps the XLA decision it recorded although this machine would
    decide otherwise under `jit_compile="auto"` (or cannot keep it).

    Args:
        message: the text.
        kind: the loop kind ("train", "test", "predict"). Defaults to None.
        recorded: the decision the run recorded (whether XLA ran). Defaults to None.
        used: the decision this machine would make, or must (`reason` says why).
            Defaults to None.
        reason: why this machine decides `used`, e.g. "a CPU, no convolutions".
            Defaults to `""`.
    """

    def __init__(self, message, kind=None, recorded=None, used=None, reason=""):
        super().__init__(message)
        self.kind, self.recorded, self.used, self.reason = kind, recorded, used, reason


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
        accelerator: whether the steps run on a GPU or TPU, for a caller that knows
            (e.g. a test playing another machine). Defaults to None (ask
            `on_accelerator(model)`).

    Attributes:
        failed: the loop kinds whose step XLA could not compile (they run plain).
        decisions: `{kind: (xla, reason)}` of the kinds decided so far, for the docs
            and diagnostics (`Trainer.xla_decisions`).
    """

    def __init__(self, jit_compile, allowed, model=None, accelerator=None):
        self.jit_compile = jit_compile
        self.allowed = allowed
        self.model = model
        self.accelerator = accelerator
        self.failed = set()
        self.decisions = {}
        self._adopted = {}  # {kind: xla} a resumed run recorded, not yet decided here

    @property
    def auto(self):
        return self.jit_compile == "auto"

    def for_pass(self, kind, op_types):
        """Whether a pass of `kind` runs with XLA; `op_types()` returns the op types
        of the kind's step (called once, under `"auto"` on a CPU only)."""
        if kind not in self.decisions:
            self.decisions[kind] = self._decide(op_types)
            if kind in self._adopted:
                self.decisions[kind] = self._follow(kind, self._adopted.pop(kind),
                                                    self.decisions[kind])
        return self.decisions[kind][0] and kind not in self.failed

    def _decide(self, op_types):
        if not self.allowed:
            return False, "XLA is not used under a strategy or eagerly"
        if not self.auto:
            return bool(self.jit_compile), f"jit_compile={self.jit_compile}"
        accelerator = (on_accelerator(self.model) if self.accelerator is None
                       else self.accelerator)
        if accelerator:
            return True, "auto: a GPU or TPU"
        convolutions = convolution_ops(op_types())
        if convolutions:
            return False, f"auto: convolutions on a CPU ({', '.join(convolutions)})"
        return True, "auto: a CPU, no convolutions"

    def _follow(self, kind, recorded, local):
        """The decision of `kind` given the one the resumed run `recorded` and this
        machine's own, `local` (`(xla, reason)`); warns where they differ."""
        xla, reason = local
        if recorded == xla:
            return local
        reason = reason.removeprefix("auto: ")
        if recorded and not self.allowed:
            warnings.warn(XlaDecisionWarning(
                f"The resumed run recorded XLA for its {kind} steps (jit_compile='auto'), "
                f"but here {reason}: they run without XLA, and the numbers may differ from "
                "an uninterrupted run's.", kind, recorded, xla, reason), stacklevel=5)
            return local
        warnings.warn(XlaDecisionWarning(
            f"The resumed run recorded {'XLA' if recorded else 'no XLA'} for its {kind} "
            f"steps (jit_compile='auto'); this machine would use "
            f"{'XLA' if xla else 'no XLA'} ({reason}). The run's decision is kept, so "
            "that its numbers do not change.", kind, recorded, xla, reason), stacklevel=5)
        return recorded, f"auto: recorded by the resumed run (here: {reason})"

    def adopt(self, recorded):
        """Follows the decisions a resumed run recorded (`recorded()` of the run's
        `XlaChoice`, `{kind: xla}`), under `"auto"` only: an explicit `jit_compile`
        decides alone. Each kind takes its recorded decision at its next pass, with
        an `XlaDecisionWarning` where this machine would decide otherwise.

        Args:
            recorded: `{kind: bool}`, or None (nothing recorded: decide here).
        """
        if not self.auto or not recorded:
            return
        for kind, xla in recorded.items():
            if not isinstance(xla, bool):
                raise TypeError(f"a recorded XLA decision must be True or False; received "
                                 f"{kind}={xla!r}")
            if kind in self.failed:
                continue  # this step cannot be compiled here: plain it stays
            self.decisions.pop(kind, None)
            self._adopted[kind] = xla

    def recorded(self):
        """`{kind: xla}` of the decisions made (or adopted) under `"auto"`, for the run's
        position (`TrainingState.state_dict()`); empty under an explicit `jit_compile`."""
        if not self.auto:
            return {}
        return {**self._adopted, **{kind: bool(xla and kind not in self.failed)
                                    for kind, (xla, _) in self.decisions.items()}}

    def compile_failed(self, kind):
        """Records that XLA could not compile `kind`'s step; it runs plain from now."""
        self.failed.add(kind)
        self.decisions[kind] = (False, "auto: XLA could not compile the step")
