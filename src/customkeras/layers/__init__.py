"""Custom Keras layers from the chapter, each registered for safe-mode loading."""

from customkeras.layers.exponential import Exponential
from customkeras.layers.gaussian_noise import GaussianNoise
from customkeras.layers.layer_normalization import LayerNormalization
from customkeras.layers.residual_block import ResidualBlock
from customkeras.layers.simple_dense import SimpleDense
from customkeras.layers.sum_product_quotient import SumProductQuotient

__all__ = [
    "Exponential",
    "GaussianNoise",
    "LayerNormalization",
    "ResidualBlock",
    "SimpleDense",
    "SumProductQuotient",
]
