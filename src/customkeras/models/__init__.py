"""Custom Keras models from the chapter, each registered for safe-mode loading."""

from customkeras.models.reconstructing_regressor import ReconstructingRegressor
from customkeras.models.residual_regressor import ResidualRegressor
from customkeras.models.wide_and_deep_regressor import WideAndDeepRegressor

__all__ = ["ReconstructingRegressor", "ResidualRegressor", "WideAndDeepRegressor"]
