"""Open a backend for any model source: name, path, artifact directory or zip."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from tunerflow.errors import ConfigError
from tunerflow.inference.base import InferenceBackend
from tunerflow.modeling.embedding_model import ModelSpec
from tunerflow.modeling.loading import BUNDLED_MODEL, load_model, with_overrides
from tunerflow.modeling.sources import resolve_source
from tunerflow.options import Backend, DType, Pooling, parse_enum

log = logging.getLogger(__name__)


def open_backend(
    model: str | Path = BUNDLED_MODEL,
    backend: str | Backend = Backend.TORCH,
    *,
    device: str = "cpu",
    dtype: str | DType = DType.FLOAT32,
    batch_size: int = 32,
    threads: int | None = None,
    pooling: str | Pooling | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    allow_download: bool = False,
) -> InferenceBackend:
    """Load ``model`` and wrap it in the chosen backend.

    For ``onnx`` and ``onnx-int8`` the artifact's own ONNX files are used; a
    model without them (a hub model, an artifact saved without ONNX) is
    exported once into the cache (``$TUNERFLOW_CACHE``) and reused.
    """
    backend = parse_enum(Backend, backend, "backend")
    dtype = parse_enum(DType, dtype, "dtype")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if backend is Backend.TORCH:
        from tunerflow.inference.torch_backend import TorchBackend

        loaded = load_model(
            model, pooling=pooling, normalize=normalize, max_length=max_length, allow_download=allow_download
        )
        torch_backend = TorchBackend(loaded, device=device, dtype=dtype, batch_size=batch_size, threads=threads)
        torch_backend.artifact = loaded.artifact
        return torch_backend
    if dtype is not DType.FLOAT32:
        raise ConfigError(f"dtype {dtype.value!r} applies to the torch backend only; ONNX graphs carry their own")
    return _open_onnx(model, backend, device, batch_size, threads, pooling, normalize, max_length, allow_download)


def _open_onnx(model, backend, device, batch_size, threads, pooling, normalize, max_length, allow_download):
    from transformers import AutoTokenizer

    from tunerflow.artifact import read_artifact_config
    from tunerflow.inference.onnx_backend import OnnxBackend

    int8 = backend is Backend.ONNX_INT8
    key = "onnx_int8" if int8 else "onnx"
    source = resolve_source(model, allow_download=allow_download)
    directory, config = (None, None)
    if source.is_artifact:
        directory, config = read_artifact_config(source.path)
    wanted_pooling = parse_enum(Pooling, pooling, "pooling") if pooling is not None else None
    if config is None or not config.get(key) or (wanted_pooling and wanted_pooling.value != config["spec"]["pooling"]):
        directory, config = _cached_export(source, int8, wanted_pooling, allow_download)
    spec = ModelSpec.from_dict(config["spec"])
    spec = _override_spec(spec, normalize, max_length)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    onnx_backend = OnnxBackend(directory / config[key]["file"], tokenizer, spec, device, batch_size, threads)
    onnx_backend.name = backend.value
    onnx_backend.artifact = config
    return onnx_backend


def _override_spec(spec: ModelSpec, normalize: bool | None, max_length: int | None) -> ModelSpec:
    data = spec.to_dict()
    if normalize is not None:
        data["normalize"] = bool(normalize)
    if max_length is not None:
        if int(max_length) < 2:
            raise ConfigError(f"max_length must be at least 2, got {max_length}")
        data["max_length"] = int(max_length)
    return ModelSpec.from_dict(data)


def _cached_export(source, int8: bool, pooling: Pooling | None, allow_download: bool):
    """Export ``source`` to an artifact with ONNX files in the cache, once per source and pooling."""
    from tunerflow import __version__
    from tunerflow.artifact import read_artifact_config, save_artifact
    from tunerflow.paths import cache_dir

    weights = sorted(p for p in Path(source.path).rglob("*") if p.suffix in {".safetensors", ".zip"})
    identity = {
        "source": str(source.path),
        "weights": [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in weights],
        "pooling": pooling.value if pooling else None,
        "int8": int8,
        "tunerflow": __version__,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    target = cache_dir("onnx") / digest
    if not (target / "tunerflow.json").is_file():
        log.info("exporting %s to ONNX%s in %s (once)", source.name, " and int8" if int8 else "", target)
        loaded = load_model(source.path if source.is_artifact else source.name, allow_download=allow_download)
        loaded = with_overrides(loaded, pooling=pooling)
        save_artifact(loaded, target, to_onnx=True, int8=int8, overwrite=True)
    return read_artifact_config(target)
