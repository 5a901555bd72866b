"""Open a backend for any model source: name, path, artifact directory or zip.

One path for every backend: resolve the source to files (a verified
artifact, or a model directory), apply the caller's settings to its spec
once (:meth:`ModelSpec.override`, which checks them against the model), make
sure the ONNX graph exists where one is asked for (exported once into the
cache), then construct the backend with everything it needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from tunerflow.artifact import load_artifact, read_artifact_config
from tunerflow.errors import ConfigError
from tunerflow.export import save_artifact
from tunerflow.format import ARTIFACT_CONFIG, Architecture, ArtifactConfig, ModelSpec
from tunerflow.inference.auto import Runtime, choose_backend
from tunerflow.inference.base import DEFAULT_MAX_TOKENS, InferenceBackend
from tunerflow.inference.cpu import choose_dtype, cpu_features
from tunerflow.inference.onnx_backend import OnnxBackend
from tunerflow.inference.openvino_backend import OPENVINO_BACKENDS, OpenVinoBackend, openvino_installed
from tunerflow.inference.torch_backend import TorchBackend
from tunerflow.modeling.loading import LoadedModel, describe_backbone_dir, load_backbone_dir
from tunerflow.modeling.sources import BUNDLED_MODEL, resolve_source
from tunerflow.options import Backend, DType, Pooling, parse_enum
from tunerflow.paths import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFiles:
    """A model source resolved to files on this machine.

    Attributes:
        name: how the source was named (a hub id or a path).
        directory: where the files are (an unpacked zip lives in the cache).
        spec: the source's own spec.
        architecture: the backbone's limits, from its ``config.json``.
        config: the artifact's config (verified), or None for a model directory.
    """

    name: str
    directory: Path
    spec: ModelSpec
    architecture: Architecture
    config: ArtifactConfig | None = None

    def load(self, spec: ModelSpec) -> LoadedModel:
        """The PyTorch model with ``spec`` (an artifact's files were verified when resolved)."""
        if self.config is None:
            return load_backbone_dir(self.directory, spec=spec)
        return load_artifact(self.directory, verify=False, spec=spec)


def open_backend(
    model: str | Path = BUNDLED_MODEL,
    backend: str | Backend = Backend.TORCH,
    *,
    device: str = "cpu",
    dtype: str | DType = DType.FLOAT32,
    batch_size: int = 32,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    threads: int | None = None,
    pooling: str | Pooling | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    allow_download: bool = False,
) -> InferenceBackend:
    """Load ``model`` and wrap it in the chosen backend.

    ``batch_size`` caps the texts and ``max_tokens`` the padded tokens of one
    forward pass (see :func:`~tunerflow.inference.batching.length_sorted_batches`).

    Every backend but ``torch`` runs the artifact's own ONNX files (``onnx`` and
    ``openvino`` its fp32 graph, ``onnx-int8`` and ``openvino-int8`` its int8
    graph); a model without them (a hub model, an artifact saved without ONNX,
    or one asked for with another pooling, which is part of the graph) is
    exported once into the cache (``$TUNERFLOW_CACHE``) and reused. ``dtype``
    sets the precision of ``torch`` and ``openvino``; the other graphs carry
    their own.

    ``auto`` picks the backend and its precision (:func:`~tunerflow.inference.auto.choose_backend`: the
    fastest path for this CPU that the artifact has and whose quality it recorded at publication; it
    never exports). ``dtype`` must then be ``float32`` (the default) or ``auto``; the backend returned
    says what was chosen and why in its ``auto`` attribute.
    """
    backend = parse_enum(Backend, backend, "backend")
    if backend is Backend.AUTO:
        dtype = auto_dtype(dtype)
    else:
        dtype = choose_dtype(dtype, backend, cpu_features(), device=device)
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if max_tokens is not None and int(max_tokens) < 1:
        raise ConfigError(f"max_tokens must be at least 1 (or None: no token limit), got {max_tokens}")
    if not backend.takes_dtype and dtype is not DType.FLOAT32:
        raise ConfigError(
            f"dtype {dtype.value!r} applies to the torch and openvino backends only; "
            f"the {backend.value} graph carries its own precision"
        )
    files = resolve_files(model, allow_download=allow_download)
    spec = files.spec.override(files.architecture, pooling=pooling, normalize=normalize, max_length=max_length)
    choice = None
    if backend is Backend.AUTO:
        choice = choose_backend(cpu_features(), files.config, Runtime(device, openvino_installed(), spec))
        log.info("backend auto on %s: %s", files.name, choice.reason)
        backend, dtype = choice.backend, choice.dtype
    options = dict(device=device, batch_size=batch_size, max_tokens=max_tokens, threads=threads)
    if backend is Backend.TORCH:
        opened = TorchBackend(files.load(spec), dtype=dtype, artifact=files.config, **options)
    else:
        files = with_onnx(files, int8=backend.int8, pooling=spec.pooling, allow_download=allow_download)
        opened = open_graph(files, spec, backend, dtype, **options)
    opened.auto = choice
    return opened


def auto_dtype(dtype: str | DType) -> DType:
    """float32 for ``backend: auto``, which chooses the precision itself; a ConfigError for bfloat16."""
    dtype = parse_enum(DType, dtype, "dtype")
    if dtype is DType.BFLOAT16:
        raise ConfigError(
            "backend 'auto' chooses the precision itself (bfloat16 only where the CPU has it and the artifact's "
            "precision check qualifies); use dtype float32 or auto with it, or name a backend to force bfloat16, "
            "e.g. backend torch with dtype bfloat16"
        )
    return DType.FLOAT32


def open_graph(
    files: ModelFiles, spec: ModelSpec, backend: Backend, dtype: DType, tokenizer=None, **options
) -> InferenceBackend:
    """The ONNX Runtime or OpenVINO backend of ``files``' graph (fp32, or int8 for the ``-int8`` backends).

    Args:
        files: an artifact's files that hold the graph.
        spec: the spec to embed with.
        backend: one of the onnx and openvino backends.
        dtype: the openvino backend's precision (float32 for the others).
        tokenizer: the model's tokenizer (default: read from ``files``).
        options: ``device``, ``batch_size``, ``max_tokens``, ``threads``.
    """
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(files.directory, local_files_only=True)
    graph = (files.directory / files.config.onnx_file(backend.int8), tokenizer, spec, files.architecture)
    if backend in OPENVINO_BACKENDS:
        return OpenVinoBackend(*graph, backend=backend, dtype=dtype, artifact=files.config, **options)
    return OnnxBackend(*graph, backend=backend, artifact=files.config, **options)


def resolve_files(model: str | Path, allow_download: bool = False) -> ModelFiles:
    """Find ``model``'s files and read its spec; an artifact is verified (a zip unpacked) here."""
    source = resolve_source(model, allow_download=allow_download)
    if source.is_artifact:
        directory, config = read_artifact_config(source.path)
        return ModelFiles(source.name, directory, config.spec, Architecture.read(directory), config)
    spec, architecture = describe_backbone_dir(source.path, source.name)
    return ModelFiles(source.name, source.path, spec, architecture)


def with_onnx(files: ModelFiles, *, int8: bool, pooling: Pooling, allow_download: bool = False) -> ModelFiles:
    """``files`` if they hold the wanted graph with this pooling, else an artifact exported from them once.

    The export lives in the cache under a key of the source's weights (paths,
    sizes, modification times), the pooling, int8 and the tunerflow version.
    """
    config = files.config
    if config is not None and config.onnx_file(int8) and config.spec.pooling is pooling:
        return files
    from tunerflow import __version__

    weights = sorted(p for p in files.directory.rglob("*") if p.suffix == ".safetensors")
    identity = {
        "source": str(files.directory),
        "weights": [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in weights],
        "pooling": pooling.value,
        "int8": int8,
        "tunerflow": __version__,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    target = cache_dir("onnx") / digest
    if not (target / ARTIFACT_CONFIG).is_file():
        log.info("exporting %s to ONNX%s in %s (once)", files.name, " and int8" if int8 else "", target)
        loaded = files.load(replace(files.spec, pooling=pooling))
        save_artifact(loaded, target, to_onnx=True, int8=int8, overwrite=True)
    return resolve_files(target, allow_download=allow_download)
