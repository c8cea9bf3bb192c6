"""Learning curves as the book draws them: training dashed, validation solid, per epoch."""

import io
import os
from collections.abc import Mapping, Sequence

import matplotlib

# No display on servers and CI: render to files only. Set before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from customkeras.cli.artifacts import atomic_write_bytes, history_columns  # noqa: E402


_VALIDATION_STYLES = ("b-*", "g-^", "m-s", "c-o", "y-d", "k-v") * 4


def validation_curves(history: Mapping[str, Sequence[float]], name: str,
                      names: Sequence[str]) -> list[tuple[str, str]]:
    """`[(history key, label)]` of the validation curves of the quantity `name`: the
    single set's `val_<name>`, and each named set's `val_<set>_<name>`
    (`Trainer.fit(validation_data={"clean": ...})`), in the history's order."""
    curves = []
    for key in history:
        if not key.startswith("val_"):
            continue
        rest = key[len("val_"):]
        if rest == name:
            curves.append((key, f"validation {name}"))
            continue
        # The quantity a named set's key ends with: the longest that fits (an
        # "accuracy" key of a set is not a "sparse_categorical_accuracy" one).
        ends = [n for n in names if rest.endswith(f"_{n}") and rest[:-len(n) - 1].isidentifier()]
        if ends and max(ends, key=len) == name:
            curves.append((key, f"validation ({rest[:-len(name) - 1]}) {name}"))
    return curves


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike,
                         title: str | None = None) -> None:
    """Draws one panel per quantity (loss, then each metric) and saves a PNG atomically.

    Each panel shows the training curve (red dashed) and, when present, the validation
    curve (blue solid), or one per named validation set, against the epoch, numbered
    from 1.

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
            for (key, label), style in zip(validation_curves(history, name, names),
                                           _VALIDATION_STYLES):
                axis.plot(range(1, len(history[key]) + 1), history[key], style, label=label)
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
