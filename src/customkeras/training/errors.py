"""Errors raised by the training engine."""


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights.

    The `Trainer` checks the loss of every step and the weights at the end of every
    execution (a group of `steps_per_execution` steps). When either is NaN or
    infinite it stops, restores the model and optimizer variables saved at the end of
    the last execution that was entirely finite, and raises this error.

    Args:
        epoch: 1-based epoch in which training diverged.
        step: 1-based step within that epoch where the problem was detected.
        reason: what was non-finite, e.g. `"the loss was nan"`.
        restored_step: 1-based step of the epoch whose weights the model now holds
            (0 when it holds the weights from before the epoch started).

    Example:

    ```python
    try:
        trainer.fit(x, y, epochs=5)
    except TrainingDivergedError as error:
        print(error.epoch, error.step)  # where it happened; weights are still usable
    ```
    """

    def __init__(self, epoch, step, reason, restored_step):
        self.epoch = epoch
        self.step = step
        self.reason = reason
        self.restored_step = restored_step
        super().__init__(
            f"Training diverged at epoch {epoch}, step {step}: {reason}. The model "
            f"keeps the weights of the last finite execution (epoch {epoch}, after "
            f"step {restored_step}). Try a lower learning rate, gradient clipping "
            "(`clipnorm=`), or check the data for NaN or infinite values."
        )
