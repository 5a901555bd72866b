"""The one loader of backbone directories (Hugging Face or sentence-transformers), safetensors only.

Modeling knows nothing of artifacts: an artifact is loaded by
:mod:`tunerflow.artifact`, which verifies it and passes its spec here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tunerflow.errors import ConfigError, ModelNotAvailableError
from tunerflow.format import HF_CONFIG, Architecture, ModelSpec
from tunerflow.modeling.embedding_model import EmbeddingModel
from tunerflow.modeling.sources import BUNDLED_MODEL, read_st_layout
from tunerflow.options import Pooling, parse_enum

log = logging.getLogger(__name__)

__all__ = [
    "BUNDLED_MODEL",
    "LoadedModel",
    "describe_backbone_dir",
    "load_backbone_dir",
    "load_tokenizer_dir",
    "with_head",
    "with_overrides",
]

DEFAULT_MAX_LENGTH = 512  # when neither the tokenizer nor sentence-transformers says


@dataclass
class LoadedModel:
    """A model ready to train or embed.

    Attributes:
        model: the PyTorch embedding model (eval mode, on the CPU).
        tokenizer: its Hugging Face tokenizer.
        spec: pooling, normalisation, max length, dimension and base model.
        path: the directory it was loaded from.
    """

    model: EmbeddingModel
    tokenizer: object
    spec: ModelSpec
    path: Path

    @property
    def architecture(self) -> Architecture:
        return self.model.architecture


def describe_backbone_dir(directory: Path, base_model: str) -> tuple[ModelSpec, Architecture]:
    """The spec and architecture of a model directory, read from its JSON files (no weights loaded).

    Settings come from a sentence-transformers directory's modules, else mean
    pooling, no normalisation and the tokenizer's (or the model's) maximum length.
    """
    from transformers import AutoConfig

    layout = read_st_layout(directory)
    hf_dir = layout.transformer_dir
    if not (hf_dir / HF_CONFIG).is_file():
        raise ModelNotAvailableError(f"{hf_dir} has no {HF_CONFIG}; it is not a Hugging Face model directory")
    config = AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    architecture = Architecture.from_hf_config(config.to_dict())
    tokenizer_limit = _tokenizer_max_length(_tokenizer_dir(directory, hf_dir))
    max_length = layout.max_length or min(tokenizer_limit, architecture.max_positions, DEFAULT_MAX_LENGTH)
    spec = ModelSpec(
        base_model=base_model,
        pooling=parse_enum(Pooling, layout.pooling or Pooling.MEAN, "pooling"),
        normalize=bool(layout.normalize),
        max_length=int(max_length),
        dimension=int(config.hidden_size),
    )
    return spec, architecture


def load_backbone_dir(
    directory: Path, base_model: str | None = None, *, spec: ModelSpec | None = None, strict: bool = False
) -> LoadedModel:
    """Load a Hugging Face or sentence-transformers directory (safetensors weights only).

    Args:
        directory: the model directory.
        base_model: how the model is named in its spec (default: ``spec.base_model``).
        spec: the spec to load with (default: :func:`describe_backbone_dir`); it is checked
            against the architecture.
        strict: refuse weights that do not fill the architecture of ``config.json``
            exactly (missing, unexpected or reshaped tensors) instead of initialising
            the difference at random, as transformers does with a warning.
    """
    from transformers import AutoModel, AutoTokenizer

    hf_dir = read_st_layout(directory).transformer_dir
    weights = sorted(hf_dir.glob("*.safetensors"))
    if not weights:
        raise ModelNotAvailableError(
            f"{hf_dir} has no *.safetensors weights; tunerflow never unpickles .bin files. "
            "Convert them once with transformers: AutoModel.from_pretrained(DIR).save_pretrained(NEW_DIR)"
        )
    if spec is None:
        spec, _ = describe_backbone_dir(directory, base_model or str(directory))
    try:
        with quiet_transformers():
            backbone, info = AutoModel.from_pretrained(
                hf_dir, local_files_only=True, use_safetensors=True, output_loading_info=True
            )
    except RuntimeError as error:  # tensor shapes in the weights differ from config.json
        raise ModelNotAvailableError(f"{weights[0]} does not match {hf_dir / HF_CONFIG}: {error}") from None
    mismatch = {key: value for key, value in info.items() if value}
    if strict and mismatch:
        raise ModelNotAvailableError(f"{weights[0]} does not match {hf_dir / HF_CONFIG}: {mismatch}")
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_dir(directory, hf_dir), local_files_only=True)
    model = EmbeddingModel(backbone, spec.pooling).eval()
    spec.check(model.architecture)
    log.info("loaded %s (%s pooling, dim %d) from %s", spec.base_model, spec.pooling.value, spec.dimension, directory)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, path=directory)


def load_tokenizer_dir(directory: Path) -> object:
    """The tokenizer of a model directory alone (no weights loaded)."""
    from transformers import AutoTokenizer

    hf_dir = read_st_layout(directory).transformer_dir
    return AutoTokenizer.from_pretrained(_tokenizer_dir(directory, hf_dir), local_files_only=True)


def with_overrides(
    loaded: LoadedModel,
    *,
    pooling: str | Pooling | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
) -> LoadedModel:
    """Return ``loaded`` with the given settings replaced (None keeps one), checked by :meth:`ModelSpec.override`."""
    loaded.spec = loaded.spec.override(loaded.architecture, pooling=pooling, normalize=normalize, max_length=max_length)
    loaded.model.pooling = loaded.spec.pooling
    return loaded


def with_head(loaded: LoadedModel, output_dim: int | None, weight=None) -> LoadedModel:
    """Return ``loaded`` with a projection head to ``output_dim`` (see :class:`EmbeddingModel`); None: as it is.

    A model that already has a head (an artifact of an ``output_dim`` run) keeps it
    when ``output_dim`` is None or its own dimension; another dimension is refused.
    """
    if output_dim is None:
        return loaded
    if loaded.model.head is not None:
        if loaded.model.dimension != output_dim:
            raise ConfigError(
                f"output_dim {output_dim}: this model already has a projection head to {loaded.model.dimension}; "
                f"give output_dim {loaded.model.dimension} (or null) to go on training it"
            )
        return loaded
    loaded.model.attach_head(output_dim, weight)
    loaded.spec = replace(loaded.spec, dimension=output_dim)
    return loaded


def _tokenizer_dir(directory: Path, hf_dir: Path) -> Path:
    return hf_dir if (hf_dir / "tokenizer_config.json").is_file() else directory


def _tokenizer_max_length(tokenizer_dir: Path) -> int:
    config_file = tokenizer_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    value = config.get("model_max_length")
    return int(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_MAX_LENGTH


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
