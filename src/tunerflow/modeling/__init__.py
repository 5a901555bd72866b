"""Backbones, pooling and the embedding model shared by training, export and inference."""

from tunerflow.modeling.embedding_model import EmbeddingModel, ModelSpec
from tunerflow.modeling.loading import BUNDLED_MODEL, LoadedModel, load_model

__all__ = ["BUNDLED_MODEL", "EmbeddingModel", "LoadedModel", "ModelSpec", "load_model"]
