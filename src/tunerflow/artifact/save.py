"""Write an artifact directory (and optionally its ``.zip``), atomically."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from tunerflow.artifact.layout import (
    ARTIFACT_CONFIG,
    FORMAT_NAME,
    FORMAT_VERSION,
    ONNX_FILE,
    ONNX_INT8_FILE,
    RUN_FILE,
    library_versions,
    manifest,
)
from tunerflow.artifact.st_compat import write_st_files
from tunerflow.errors import ArtifactError
from tunerflow.modeling.loading import LoadedModel, quiet_transformers

log = logging.getLogger(__name__)


def save_artifact(
    loaded: LoadedModel,
    directory: str | Path,
    *,
    run: dict | None = None,
    to_onnx: bool = False,
    int8: bool = False,
    probe_texts: list[str] | None = None,
    extra_files: dict[str, Path] | None = None,
    zip: bool = False,
    overwrite: bool = False,
) -> Path:
    """Save ``loaded`` as an artifact directory and return its path.

    The files are written to a temporary sibling and renamed into place, so a
    reader never sees half an artifact.

    Args:
        loaded: the model, tokenizer and spec to save.
        directory: the artifact directory to create.
        run: run metadata and metrics for ``run.json`` (empty without a run).
        to_onnx: also export ``model.onnx`` (checked for parity with PyTorch).
        int8: also write ``model.int8.onnx`` (implies ``to_onnx``) and record
            its cosine to fp32 on ``probe_texts``.
        extra_files: more files to include, by name in the artifact.
        zip: also write ``<directory>.zip``.
        overwrite: replace an existing directory instead of failing.
    """
    target = Path(directory).expanduser().resolve()
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists; pass overwrite=True to replace it", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        config = _write_files(loaded, staging, run or {}, to_onnx or int8, int8, probe_texts, extra_files or {})
        config["files"] = manifest(staging)
        (staging / ARTIFACT_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if zip:
        zip_artifact(target)
    log.info("saved artifact %s", target)
    return target


def _write_files(
    loaded: LoadedModel,
    staging: Path,
    run: dict,
    to_onnx: bool,
    int8: bool,
    probe_texts: list[str] | None,
    extra_files: dict[str, Path],
) -> dict:
    with quiet_transformers():
        loaded.model.backbone.save_pretrained(staging)
    loaded.tokenizer.save_pretrained(staging)
    write_st_files(staging, loaded.spec)
    (staging / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n")
    for name, source in extra_files.items():
        shutil.copyfile(source, staging / name)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "spec": loaded.spec.to_dict(),
        "versions": library_versions(),
        "onnx": None,
        "onnx_int8": None,
    }
    if to_onnx:
        from tunerflow.export import export_onnx, quantize_int8

        config["onnx"] = export_onnx(loaded, staging / ONNX_FILE)
        if int8:
            config["onnx_int8"] = quantize_int8(loaded, staging / ONNX_FILE, staging / ONNX_INT8_FILE, probe_texts)
    return config


def zip_artifact(directory: Path) -> Path:
    """Write ``<directory>.zip`` with the artifact's files at the archive root."""
    archive = directory.with_suffix(".zip")
    partial = archive.with_name(f".{archive.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as handle:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                # Weights barely compress: storing them is several times faster than deflating.
                stored = path.suffix in (".safetensors", ".onnx")
                handle.write(path, path.relative_to(directory).as_posix(), zipfile.ZIP_STORED if stored else None)
    partial.replace(archive)
    return archive
