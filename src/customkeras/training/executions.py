"""Planning graph executions: which steps each call of a traced loop runs.

Each call of a traced loop costs a fixed ~1-2 ms on the host (the call itself with its
captured variables, reading the metrics, callbacks, the progress display). Measured on
the chapter's MLP with the XLA loop on a quiet 2-core CPU: ~5,900 steps/s with 100
steps per call, ~6,800 with 1,200. So by default (`"auto"`) the number of steps per
call adapts to take about `TARGET_SECONDS`: the overhead stays near 1%, while the
display, batch callbacks and `model.stop_training` (Ctrl-C) still respond within a
fraction of a second, for a tiny MLP as for a slow model. The step count is a tensor
argument of the loop, so changing it never retraces.
"""

import time

TARGET_SECONDS = 0.2
INITIAL_STEPS = 100
MAX_STEPS = 10_000
MAX_GROWTH = 4  # per execution, up or down: one noisy measurement cannot swing it far


class ExecutionPlanner:
    """Splits passes over a data set into graph executions.

    Args:
        steps_per_execution: an int (fixed) or `"auto"` (adapted to the measured
            time of executions, starting at `INITIAL_STEPS`).
        clock: a function returning seconds. Defaults to `time.perf_counter`.
        agree: None, or a function called after every execution with the planned
            number of steps per execution, returning the number to use. A
            multi-worker run passes one that returns the chief's plan: each worker
            times its own executions, but all must run the same steps.
            Defaults to None.
    """

    def __init__(self, steps_per_execution, clock=time.perf_counter, agree=None):
        self.adaptive = steps_per_execution == "auto"
        self.steps = INITIAL_STEPS if self.adaptive else steps_per_execution
        self._clock = clock
        self.agree = agree

    def executions(self, total, start=0, multiple=1, limit=None, boundary=None):
        """Yields `(first_step, num_steps)` for each execution of one pass.

        Args:
            total: the steps in the pass, or None for a pass that ends when the
                consumer stops asking (its data ran out).
            start: the first step to run (a resumed epoch). Defaults to 0.
            multiple: every execution but a pass's last runs a multiple of this
                many steps (a feed of super-batches). Defaults to 1.
            limit: at most this many steps per execution (1 where a callback must
                see every batch, `callback_hooks`), or None for the planned number.
            boundary: a step that no execution crosses (where the feed's XLA mode
                changes: `sources.feeds`), or None.

        The time until the consumer asks for the next execution is what gets
        measured; it sets how many steps later executions run, never what they
        compute.
        """
        step = start
        while total is None or step < total:
            count = limit or max(self.steps // multiple, 1) * multiple
            end = boundary if boundary is not None and step < boundary else total
            count = count if end is None else min(count, end - step)
            started = self._clock()
            yield step, count
            # A pass's first execution may include tracing or XLA compilation, and a
            # short remainder is mostly overhead: neither tells the steady cost; nor
            # do executions cut short by `limit`.
            if step > 0 and 2 * count >= self.steps and limit is None:
                self._observe(count, self._clock() - started)
            if self.agree is not None:
                self.steps = int(self.agree(self.steps))
            step += count

    def _observe(self, count, seconds):
        if not self.adaptive:
            return
        wanted = count * TARGET_SECONDS / max(seconds, 1e-6)
        wanted = min(max(wanted, self.steps / MAX_GROWTH), self.steps * MAX_GROWTH)
        self.steps = int(min(max(round(wanted), 1), MAX_STEPS))
