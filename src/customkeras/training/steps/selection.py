"""Choosing, for each of the three steps, the model's own or the default one."""

import dataclasses

from customkeras.training.steps.default import DefaultStep
from customkeras.training.steps.model_step import ModelStep, overrides


@dataclasses.dataclass(frozen=True)
class Steps:
    """The train, test and predict steps of one model.

    Each is a `DefaultStep` or a `ModelStep`; `train.train(batch, totals)`,
    `test.test(batch, totals)` and `predict.predict(batch)` are the functions the loops
    call.
    """

    train: object
    test: object
    predict: object

    @property
    def custom(self):
        """Which steps are the model's own, e.g. `("train_step",)`."""
        names = ("train_step", "test_step", "predict_step")
        return tuple(n for n, s in zip(names, (self.train, self.test, self.predict))
                     if isinstance(s, ModelStep))


def make_steps(model, strategy):
    """Returns the `Steps` of `model`: its own where its class overrides them."""
    default = DefaultStep(model, strategy)
    own = ModelStep(model)
    return Steps(
        train=own if overrides(model, "train_step") else default,
        test=own if overrides(model, "test_step") else default,
        predict=own if overrides(model, "predict_step") else default,
    )
