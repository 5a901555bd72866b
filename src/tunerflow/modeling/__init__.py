"""Backbones, pooling and the embedding model shared by training, export and inference.

Modeling knows nothing of artifacts; ``load_model`` (any source, artifacts
included) is :func:`tunerflow.artifact.load_model`.
"""

from tunerflow.format import ModelSpec
from tunerflow.modeling.embedding_model import EmbeddingModel
from tunerflow.modeling.loading import BUNDLED_MODEL, LoadedModel, load_backbone_dir, with_overrides

__all__ = ["BUNDLED_MODEL", "EmbeddingModel", "LoadedModel", "ModelSpec", "load_backbone_dir", "with_overrides"]
