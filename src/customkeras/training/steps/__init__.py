"""The step room: what one training, evaluation or prediction step does.

A step is a function of one batch, run in a replica context (inside
`strategy.run`, or directly without a strategy). The loops (`training.loops`) call it
many times per graph execution; the controller never calls it.

* `ModelStep` runs the model's own `train_step` / `test_step` / `predict_step`, the
  override points of the Keras guide "Customizing what happens in fit()": a GAN with
  two optimizers, gradient surgery, several models.
* `DefaultStep` is Keras's default step (the compiled loss, `loss_weights`,
  `model.losses`, loss scaling, the optimizer's clipping, EMA and gradient
  accumulation, the compiled and model-tracked metrics) written on the model's public
  pieces (`compute_loss`, `compute_metrics`, `optimizer.apply_gradients`), with one
  difference: under `tf.distribute` each replica's share of the loss is weighted by
  its share of the global batch, so an uneven last batch is exact.

`make_steps(model)` picks, for each of the three steps, the model's own when its class
overrides it, else the default.
"""

from customkeras.training.steps.default import DefaultStep
from customkeras.training.steps.model_step import ModelStep, overrides
from customkeras.training.steps.selection import Steps, make_steps

__all__ = ["DefaultStep", "ModelStep", "Steps", "make_steps", "overrides"]
