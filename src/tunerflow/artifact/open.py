"""Load a model from any source: bundled name, hub id (from the local cache), directory or artifact."""

from __future__ import annotations

from pathlib import Path

from tunerflow.artifact.load import load_artifact, read_artifact_config
from tunerflow.modeling.loading import (
    LoadedModel,
    describe_backbone_dir,
    load_backbone_dir,
    load_tokenizer_dir,
    with_overrides,
)
from tunerflow.modeling.sources import BUNDLED_MODEL, ModelSource, resolve_source
from tunerflow.options import Pooling


def load_model(
    name_or_path: str | Path | ModelSource = BUNDLED_MODEL,
    *,
    pooling: str | Pooling | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    allow_download: bool = False,
) -> LoadedModel:
    """Load a model by bundled name, hub id (from the local cache), directory or artifact.

    Settings left as None come from the source (an artifact's config, a
    sentence-transformers directory's modules), else mean pooling, no
    normalisation and the model's own maximum length. The settings given are
    checked against the model by :meth:`tunerflow.format.ModelSpec.override`. A
    :class:`ModelSource` (from a server's :class:`~tunerflow.modeling.catalogue.Catalogue`) is used as resolved.
    """
    if isinstance(name_or_path, ModelSource):
        source = name_or_path
    else:
        source = resolve_source(name_or_path, allow_download=allow_download)
    if source.is_artifact:
        loaded = load_artifact(source.path)
    else:
        loaded = load_backbone_dir(source.path, base_model=source.name)
    return with_overrides(loaded, pooling=pooling, normalize=normalize, max_length=max_length)


def load_tokenizer(source: ModelSource) -> tuple[object, int]:
    """A model's tokenizer and its own maximum length in tokens, without loading its weights."""
    if source.is_artifact:
        directory, config = read_artifact_config(source.path, verify=False)
        return load_tokenizer_dir(directory), config.spec.max_length
    spec, _ = describe_backbone_dir(source.path, source.name)
    return load_tokenizer_dir(source.path), spec.max_length
