"""Training: the recipe, pytorch-metric-learning components, the loop and its callbacks."""

from tunerflow.training.recipe import Recipe

__all__ = ["Recipe"]
