"""Learning curves as the book draws them: training dashed, validation solid, per epoch."""

import io
import os
from collections.abc import Mapping, Sequence

import matplotlib

# No display on servers and CI: render to files only. Set before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from customkeras.cli.artifacts import atomic_write_bytes, history_columns  # noqa: E402


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike,
                         title: str | None = None) -> None:
    """Draws one panel per quantity (loss, then each metric) and saves a PNG atomically.

    Each panel shows the training curve (red dashed) and, when present, the validation
    curve (blue solid) against the epoch, numbered from 1.

    Args:
        history: `{name: [value per epoch]}` as in `keras.callbacks.History.history`.
        path: where to write the PNG.
        title: figure title. Defaults to none.
    """
    names = [name for name in history_columns(history) if not name.startswith("val_")]
    figure, axes = plt.subplots(1, max(len(names), 1), figsize=(5 * max(len(names), 1), 4),
                                squeeze=False)
    try:
        for axis, name in zip(axes[0], names):
            epochs = range(1, len(history[name]) + 1)
            axis.plot(epochs, history[name], "r--.", label=f"train {name}")
            if f"val_{name}" in history:
                axis.plot(epochs, history[f"val_{name}"], "b-*", label=f"validation {name}")
            axis.set_xlabel("Epoch")
            axis.set_ylabel(name)
            axis.grid(True)
            axis.legend()
            # Integer epochs only: a 2-epoch run should not show ticks at 1.25, 1.5, ...
            axis.xaxis.get_major_locator().set_params(integer=True)
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
