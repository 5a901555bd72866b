"""The artifact's manifest (file sizes and digests) and the library versions that wrote it.

The file names themselves live in :mod:`tunerflow.format`; they are
re-exported here for old imports.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

from tunerflow.format import (
    ARTIFACT_CONFIG,
    FORMAT_NAME,
    FORMAT_VERSION,
    ONNX_FILE,
    ONNX_INT8_FILE,
    RUN_FILE,
    WEIGHTS_FILE,
)

__all__ = [
    "ARTIFACT_CONFIG",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ONNX_FILE",
    "ONNX_INT8_FILE",
    "RUN_FILE",
    "WEIGHTS_FILE",
    "file_digest",
    "library_versions",
    "manifest",
]

_VERSIONED_PACKAGES = ("tunerflow", "torch", "transformers", "tokenizers", "safetensors", "onnx", "onnxruntime")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that wrote an artifact (absent ones are left out)."""
    versions = {}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(directory: Path) -> dict[str, dict]:
    """Size and digest of every file in ``directory`` except the config itself."""
    entries = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative != ARTIFACT_CONFIG:
            entries[relative] = {"size": path.stat().st_size, "sha256": file_digest(path)}
    return entries
