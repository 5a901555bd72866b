"""Load an embedding model and its tokenizer from any source, offline first."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tunerflow.errors import ConfigError, ModelNotAvailableError
from tunerflow.modeling.embedding_model import EmbeddingModel, ModelSpec
from tunerflow.modeling.sources import BUNDLED_MODEL, read_st_layout, resolve_source
from tunerflow.options import Pooling, parse_enum

log = logging.getLogger(__name__)

__all__ = ["BUNDLED_MODEL", "LoadedModel", "load_backbone_dir", "load_model"]


@dataclass
class LoadedModel:
    """A model ready to train or embed.

    Attributes:
        model: the PyTorch embedding model (eval mode, on the CPU).
        tokenizer: its Hugging Face tokenizer.
        spec: pooling, normalisation, max length, dimension and base model.
        path: the directory it was loaded from.
        artifact: the artifact's config when loaded from an artifact, else None.
    """

    model: EmbeddingModel
    tokenizer: object
    spec: ModelSpec
    path: Path
    artifact: dict | None = None


def load_model(
    name_or_path: str | Path = BUNDLED_MODEL,
    *,
    pooling: str | Pooling | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    allow_download: bool = False,
) -> LoadedModel:
    """Load a model by bundled name, hub id (from the local cache), directory or artifact.

    Settings left as None come from the source (an artifact's config, a
    sentence-transformers directory's modules), else mean pooling, no
    normalisation and the model's own maximum length.
    """
    source = resolve_source(name_or_path, allow_download=allow_download)
    if source.is_artifact:
        from tunerflow.artifact import load_artifact  # the artifact package builds on this one

        loaded = load_artifact(source.path)
    else:
        loaded = load_backbone_dir(source.path, base_model=source.name)
    return with_overrides(loaded, pooling=pooling, normalize=normalize, max_length=max_length)


def with_overrides(
    loaded: LoadedModel,
    *,
    pooling: str | Pooling | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
) -> LoadedModel:
    """Return ``loaded`` with the given settings replaced (None keeps the current one)."""
    changes: dict = {}
    if pooling is not None:
        changes["pooling"] = parse_enum(Pooling, pooling, "pooling")
        loaded.model.pooling = changes["pooling"]
    if normalize is not None:
        changes["normalize"] = bool(normalize)
    if max_length is not None:
        changes["max_length"] = check_max_length(max_length, loaded.model)
    if changes:
        loaded.spec = replace(loaded.spec, **changes)
    return loaded


def check_max_length(max_length: int, model: EmbeddingModel) -> int:
    limit = int(getattr(model.backbone.config, "max_position_embeddings", 512))
    if not 2 <= int(max_length) <= limit:
        raise ConfigError(f"max_length must be between 2 and {limit} for this model, got {max_length}")
    return int(max_length)


def load_backbone_dir(directory: Path, base_model: str) -> LoadedModel:
    """Load a Hugging Face or sentence-transformers directory (safetensors weights only)."""
    from transformers import AutoModel, AutoTokenizer

    layout = read_st_layout(directory)
    hf_dir = layout.transformer_dir
    if not any(hf_dir.glob("*.safetensors")):
        raise ModelNotAvailableError(
            f"{hf_dir} has no *.safetensors weights; tunerflow never unpickles .bin files. "
            "Convert them once with transformers: AutoModel.from_pretrained(DIR).save_pretrained(NEW_DIR)"
        )
    with quiet_transformers():
        backbone = AutoModel.from_pretrained(hf_dir, local_files_only=True, use_safetensors=True)
    tokenizer_dir = hf_dir if (hf_dir / "tokenizer_config.json").is_file() else directory
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    pooling = parse_enum(Pooling, layout.pooling or Pooling.MEAN, "pooling")
    model = EmbeddingModel(backbone, pooling).eval()
    limit = int(getattr(backbone.config, "max_position_embeddings", 512))
    max_length = layout.max_length or min(int(tokenizer.model_max_length), limit, 512)
    spec = ModelSpec(
        base_model=base_model,
        pooling=pooling,
        normalize=bool(layout.normalize),
        max_length=int(max_length),
        dimension=model.dimension,
    )
    log.info("loaded %s (%s pooling, dim %d) from %s", base_model, pooling.value, spec.dimension, directory)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, path=directory)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-file progress bars (loading, saving) for the duration."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
