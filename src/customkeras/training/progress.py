"""Progress display for `Trainer.fit` (exercise 13a): a Keras callback.

With a terminal (or a notebook), two tqdm bars: all epochs, and the current epoch
with its iteration count, both showing the running mean loss and metrics, plus
`val_loss` / `val_*` when an epoch ends. Without a terminal (CI, log files), one
line per epoch, like Keras `verbose=2`. `verbose=0` prints nothing.

Like Keras's `ProgbarLogger`, it runs on the ordinary hooks. Its batch hook runs once
per execution (`steps_per_execution` steps), so it costs nothing measurable; it prints
there the validations that `history.steps` gained. Keras's `CallbackList` sorts the
logs' keys: the run's `TrainingState` gives back their order.
"""

import sys
import time

import keras
from tqdm.auto import tqdm

VERBOSE_CHOICES = ("auto", 0, 1, 2)


def make_progress(verbose, stream=None):
    """Returns the progress display selected by `verbose`, or None (`verbose=0`).

    Args:
        verbose: `"auto"` (bars when stderr is a terminal or inside a notebook,
            otherwise one line per epoch), `0` (silent), `1` (bars) or `2` (lines).
        stream: where lines are written. Defaults to `sys.stdout`.
    """
    if verbose not in VERBOSE_CHOICES or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be one of {VERBOSE_CHOICES}; received {verbose!r}")
    if verbose == "auto":
        verbose = 1 if _interactive() else 2
    return None if verbose == 0 else BarProgress() if verbose == 1 else LineProgress(stream)


def _interactive():
    stream = sys.stderr
    return "ipykernel" in sys.modules or bool(getattr(stream, "isatty", None)
                                              and stream.isatty())


def format_logs(logs):
    """Formats `{"loss": 0.51234, ...}` as `"loss: 0.5123 - ..."`."""
    return " - ".join(f"{name}: {value:.4f}" for name, value in logs.items())


CUT_SHORT = "cut short (not a complete epoch)"


class Progress(keras.callbacks.Callback):
    """The base of the displays: counts the epoch's steps (`steps_done`) and shows the
    validations that `history.steps` gained."""

    batch_hooks_per_execution = True  # only where an execution ended matters
    steps_done = _shown = 0
    _state = None

    def set_training_state(self, state):
        """Takes the run's `TrainingState`, whose logs give the keys' order."""
        self._state = state

    def on_train_begin(self, logs=None):
        self._shown = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done = batch + 1
        records = getattr(getattr(self.model, "history", None), "steps", [])
        for record in records[self._shown:]:
            self.validation(record["step"], {key: value for key, value in record.items()
                                             if key not in ("step", "epoch")})
        self._shown = len(records)

    def validation(self, step, logs):
        """Shows a validation every `validation_interval` steps, at global step `step`."""

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Ends the display (`FitLoop` calls it when `fit` raises: no hook runs then)."""

    @property
    def cut_short(self):
        """Whether the epoch ended before its last step (a stop request, e.g. Ctrl-C)."""
        return self.params["steps"] is not None and self.steps_done < self.params["steps"]

    def _ordered(self, logs, epoch_end=False):
        """`logs` in the run's order (the state's training, then validation, logs);
        at the end of an epoch cut short, without the validation's numbers (not those
        of an epoch)."""
        logs, state = logs or {}, self._state
        if epoch_end and self.cut_short:
            logs = {key: value for key, value in logs.items() if not key.startswith("val_")}
        order = [*state.logs, *state.validation_logs] if state is not None else []
        return {**{key: logs[key] for key in order if key in logs}, **logs}


class LineProgress(Progress):
    """One line per epoch, like Keras `verbose=2`.

    Args:
        stream: where lines are written. Defaults to `sys.stdout`.
    """

    def __init__(self, stream=None):
        super().__init__()
        self._stream = stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._start = time.perf_counter()

    def validation(self, step, logs):
        self._stream.write(f"  step {step} - {format_logs(logs)}\n")
        self._stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        per_step = 1000 * seconds / max(self.steps_done, 1)
        end = format_logs(self._ordered(logs, epoch_end=True))
        end = f"{CUT_SHORT} - {end}" if self.cut_short else end
        self._stream.write(
            f"Epoch {epoch + 1}/{self.params['epochs']} - {self.steps_done}/"
            f"{self.params['steps']} - {seconds:.0f}s - {per_step:.2f}ms/step - {end}\n")
        self._stream.flush()


class BarProgress(Progress):
    """tqdm bars: all epochs (from the first one run), and the current epoch with its
    iteration count."""

    _all = _epoch_bar = None

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if self._all is None:  # the first epoch run: a resume may have moved it
            self._all = tqdm(total=self.params["epochs"], initial=epoch, desc="All epochs",
                             unit="epoch", position=0, dynamic_ncols=True)
        self._epoch_bar = tqdm(
            total=self.params["steps"], desc=f"Epoch {epoch + 1}/{self.params['epochs']}",
            unit="step", position=1, leave=True, dynamic_ncols=True)

    def validation(self, step, logs):
        tqdm.write(f"step {step} - {format_logs(logs)}")

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._epoch_bar.update(self.steps_done - self._epoch_bar.n)
        self._epoch_bar.set_postfix_str(format_logs(self._ordered(logs)), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        # A cut-short epoch shows as such, and is not counted among the complete ones.
        shown = format_logs(self._ordered(logs, epoch_end=True))
        self._epoch_bar.set_postfix_str(
            f"{shown} - {CUT_SHORT}" if self.cut_short else shown, refresh=True)
        self._epoch_bar.close()
        if not self.cut_short:
            self._all.update(1)
            self._all.set_postfix_str(shown)

    def close(self):
        for bar in (self._epoch_bar, self._all):
            if bar is not None:
                bar.close()
        self._all = self._epoch_bar = None
