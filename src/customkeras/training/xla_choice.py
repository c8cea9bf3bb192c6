"""The XLA choice: which executions of a `Trainer`'s loops run XLA-compiled.

`jit_compile=True` or `False` decides alone. Under `"auto"` the choice is measured:
a ski-rental rule over the steps of every call decides when compiling pays
(`XLA_MIN_STEPS`), the time per step of XLA executions is compared with the plain
loop's and the slower is dropped (on CPUs, convolutions in an XLA loop have run several
times slower), and a model that XLA cannot compile runs without it (the controller
catches the error, `is_xla_compile_error`). The controller asks before every execution.
"""

import re

import tensorflow as tf

# Under "auto", a loop kind switches to XLA once the steps it has run, summed over every
# call of this Trainer, reach this many: compiling costs about as much as this many
# steps save (the break-even of benchmarks/results/call_profile.json), so switching
# then never costs much more than twice the best choice made in hindsight, whatever
# calls come next; and a one-epoch call of the chapter's data (1,719 steps) compiles in
# its first call, as Keras on JAX does.
XLA_MIN_STEPS = 1500

# Once a loop kind has run this many seconds with XLA, after its compilation, its time
# per step is compared with the plain loop's and the slower one is dropped, from the
# next execution on. If the plain loop has no timing yet, a training execution first
# runs `PLAIN_PROBE_STEPS` steps plain (a probe; twice, if the first one traces).
XLA_CHECK_SECONDS = 0.5
PLAIN_PROBE_STEPS = 8
_MAX_PROBES = 2

# What TensorFlow says when XLA cannot compile a graph (an op without an XLA kernel).
_XLA_FAILURE = re.compile(
    r"XLA|xla|jit_compile|Detected unsupported operations|Compilation failure|"
    r"must be a compile-time constant")


def is_xla_compile_error(error):
    """Whether `error` says that XLA could not compile a graph."""
    return (isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError))
            and bool(_XLA_FAILURE.search(str(error))))


class XlaChoice:
    """The XLA decisions of one `Trainer`.

    Args:
        jit_compile: `True`, `False` or `"auto"`.
        allowed: False under a strategy (XLA cannot wrap `strategy.run`) or eagerly.

    Attributes:
        failed: XLA could not compile the model's step ("auto" then runs without).
        slower: the loop kinds whose XLA steps measured slower than plain ones.
        steps_run: steps run so far by loop kind ("train", "test", "predict").
    """

    def __init__(self, jit_compile, allowed):
        self.jit_compile = jit_compile
        self.allowed = allowed
        self.failed = False
        self.slower = set()
        self.steps_run = {"train": 0, "test": 0, "predict": 0}
        self._probes = 0
        # (kind, xla) -> [steps, seconds] of the executions that neither traced nor
        # compiled (an XLA kind's first compiles); None until one has run.
        self._timings = {}

    @property
    def auto(self):
        return self.jit_compile == "auto"

    def for_pass(self, kind, planned_steps):
        """Whether a pass of `planned_steps` steps of `kind` runs with XLA."""
        if not self.allowed or self.failed or kind in self.slower:
            return False
        if self.auto:
            return self.steps_run[kind] + planned_steps >= XLA_MIN_STEPS
        return bool(self.jit_compile)

    def for_execution(self, kind, xla):
        """An execution's choice within a pass planned with `xla`: what the pass
        chose, unless XLA has failed or measured slower since."""
        return bool(xla) and not self.failed and kind not in self.slower

    def claim_plain_probe(self):
        """Whether the next XLA training execution starts with a plain probe (counted
        as run): XLA has been timed for `XLA_CHECK_SECONDS`, the plain loop never."""
        plain, fast = self._timings.get(("train", False)), self._timings.get(("train", True))
        due = (self.auto and self._probes < _MAX_PROBES and not plain
               and fast is not None and fast[1] >= XLA_CHECK_SECONDS)
        self._probes += due
        return due

    def timed(self, kind, xla, steps, seconds, traced=None):
        """Records an execution's steps and time (`traced`: whether it traced a loop;
        None: not known, so a kind's first plain one is taken to have); under "auto",
        drops XLA where it is slower."""
        self.steps_run[kind] += steps
        key = (kind, bool(xla))
        first = key not in self._timings
        self._timings.setdefault(key, None)
        if traced or (first and (xla or traced is None)):
            return  # a trace's or the first XLA execution's compilation is no step's cost
        if self._timings[key] is None:
            self._timings[key] = [0, 0.0]
        self._timings[key][0] += steps
        self._timings[key][1] += seconds
        plain, fast = self._timings.get((kind, False)), self._timings.get((kind, True))
        if (self.auto and plain and fast and fast[1] >= XLA_CHECK_SECONDS
                and plain[0] and fast[0]
                and fast[1] / fast[0] > 1.1 * plain[1] / plain[0]):
            self.slower.add(kind)
