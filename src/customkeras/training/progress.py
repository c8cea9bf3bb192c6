"""Progress display for `Trainer.fit` (exercise 13a).

With a terminal (or a notebook), two tqdm bars: all epochs, and the current epoch
with its iteration count, both showing the running mean loss and metrics, plus
`val_loss` / `val_*` when an epoch ends. Without a terminal (CI, log files), one
line per epoch, like Keras `verbose=2`. `verbose=0` prints nothing.

The display is updated once per execution (`steps_per_execution` steps), never
per step, so it costs nothing measurable.
"""

import sys
import time

from tqdm.auto import tqdm

VERBOSE_CHOICES = ("auto", 0, 1, 2)


def make_progress(verbose, *, epochs, initial_epoch, steps_per_epoch, stream=None):
    """Returns the progress display selected by `verbose`.

    Args:
        verbose: `"auto"` (bars when stderr is a terminal or inside a notebook,
            otherwise one line per epoch), `0` (silent), `1` (bars) or `2` (lines).
        epochs: index of the last epoch (as in `fit(epochs=...)`).
        initial_epoch: index of the first epoch to run (0-based).
        steps_per_epoch: number of training steps in one epoch.
        stream: where lines are written. Defaults to `sys.stdout`.
    """
    if verbose not in VERBOSE_CHOICES or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be one of {VERBOSE_CHOICES}; received {verbose!r}")
    if verbose == "auto":
        verbose = 1 if _interactive() else 2
    if verbose == 0:
        return SilentProgress()
    cls = BarProgress if verbose == 1 else LineProgress
    return cls(epochs, initial_epoch, steps_per_epoch, stream or sys.stdout)


def _interactive():
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def format_logs(logs):
    """Formats `{"loss": 0.51234, ...}` as `"loss: 0.5123 - ..."`."""
    return " - ".join(f"{name}: {value:.4f}" for name, value in logs.items())


CUT_SHORT = "cut short (not a complete epoch)"


def _cut_short(steps_done, steps_per_epoch):
    """Whether an epoch ended before its last step (a stop request, e.g. Ctrl-C)."""
    return steps_per_epoch is not None and 0 <= steps_done < steps_per_epoch


def _training_logs(logs):
    # A cut-short epoch's validation numbers are not those of an epoch: not shown.
    return {name: value for name, value in logs.items() if not name.startswith("val_")}


class SilentProgress:
    """Shows nothing (`verbose=0`); the base of the other displays."""

    def epoch_begin(self, epoch):
        pass

    def execution_end(self, steps_done, logs):
        pass

    def validation(self, step, logs):
        """A validation every `validation_interval` steps, at global step `step`."""

    def epoch_end(self, epoch, logs):
        pass

    def close(self):
        pass


class LineProgress(SilentProgress):
    """One line per epoch, like Keras `verbose=2`."""

    def __init__(self, epochs, initial_epoch, steps_per_epoch, stream):
        self._epochs = epochs
        self._steps_per_epoch = steps_per_epoch
        self._stream = stream
        self._start = time.perf_counter()
        self._steps_done = 0

    def epoch_begin(self, epoch):
        self._start = time.perf_counter()
        self._steps_done = 0

    def execution_end(self, steps_done, logs):
        self._steps_done = steps_done

    def validation(self, step, logs):
        self._stream.write(f"  step {step} - {format_logs(logs)}\n")
        self._stream.flush()

    def epoch_end(self, epoch, logs):
        seconds = time.perf_counter() - self._start
        per_step = 1000 * seconds / max(self._steps_done, 1)
        if _cut_short(self._steps_done, self._steps_per_epoch):
            logs = _training_logs(logs)
            end = f"{CUT_SHORT} - {format_logs(logs)}"
        else:
            end = format_logs(logs)
        self._stream.write(
            f"Epoch {epoch + 1}/{self._epochs} - {self._steps_done}/{self._steps_per_epoch} "
            f"- {seconds:.0f}s - {per_step:.2f}ms/step - {end}\n"
        )
        self._stream.flush()


class BarProgress(SilentProgress):
    """tqdm bars: all epochs, and the current epoch with its iteration count."""

    def __init__(self, epochs, initial_epoch, steps_per_epoch, stream):
        self._epochs = epochs
        self._steps_per_epoch = steps_per_epoch
        self._all = tqdm(
            total=epochs, initial=initial_epoch, desc="All epochs", unit="epoch",
            position=0, dynamic_ncols=True,
        )
        self._epoch_bar = None

    def epoch_begin(self, epoch):
        self._epoch_bar = tqdm(
            total=self._steps_per_epoch, desc=f"Epoch {epoch + 1}/{self._epochs}",
            unit="step", position=1, leave=True, dynamic_ncols=True,
        )

    def validation(self, step, logs):
        tqdm.write(f"step {step} - {format_logs(logs)}")

    def execution_end(self, steps_done, logs):
        self._epoch_bar.update(steps_done - self._epoch_bar.n)
        self._epoch_bar.set_postfix_str(format_logs(logs), refresh=False)

    def epoch_end(self, epoch, logs):
        if _cut_short(self._epoch_bar.n, self._steps_per_epoch):
            # Shown as cut short, and not counted among the complete epochs.
            self._epoch_bar.set_postfix_str(
                f"{format_logs(_training_logs(logs))} - {CUT_SHORT}", refresh=True)
            self._epoch_bar.close()
            return
        self._epoch_bar.set_postfix_str(format_logs(logs), refresh=True)
        self._epoch_bar.close()
        self._all.update(1)
        self._all.set_postfix_str(format_logs(logs))

    def close(self):
        if self._epoch_bar is not None:
            self._epoch_bar.close()
        self._all.close()
