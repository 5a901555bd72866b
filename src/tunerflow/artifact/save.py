"""Write an artifact directory (and optionally its ``.zip``), atomically."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from tunerflow.artifact.layout import library_versions, manifest
from tunerflow.artifact.st_compat import write_st_files
from tunerflow.errors import ArtifactError
from tunerflow.format import (
    ARTIFACT_CONFIG,
    HEAD_FILE,
    HEAD_WEIGHT,
    RUN_FILE,
    ArtifactConfig,
    HeadInfo,
    Int8Info,
    OnnxInfo,
    PrecisionCheck,
)
from tunerflow.modeling.loading import LoadedModel, quiet_transformers

log = logging.getLogger(__name__)

# Writes the ONNX files into the directory it is given and says what it wrote
# (tunerflow.export passes one; the artifact layer itself never exports).
OnnxWriter = Callable[[Path], tuple[OnnxInfo, Int8Info | None]]
# Measures the lower-precision paths of the model and of the graphs in the staging directory against fp32
# (tunerflow.runs passes one at publication); what it returns is recorded in the config. It reads the
# staging directory and writes nothing into it.
PrecisionChecker = Callable[[LoadedModel, Path, ArtifactConfig], dict[str, PrecisionCheck]]


def save_artifact(
    loaded: LoadedModel,
    directory: str | Path,
    *,
    run: dict | None = None,
    extra_files: dict[str, Path] | None = None,
    zip: bool = False,
    overwrite: bool = False,
    write_onnx: OnnxWriter | None = None,
    check_precision: PrecisionChecker | None = None,
) -> Path:
    """Save ``loaded`` as an artifact directory and return its path.

    The files are written to a temporary sibling and renamed into place, so a
    reader never sees half an artifact. To include ONNX files use
    :func:`tunerflow.export.save_artifact`, which passes ``write_onnx``.

    Args:
        loaded: the model, tokenizer and spec to save.
        directory: the artifact directory to create.
        run: run metadata and metrics for ``run.json`` (empty without a run).
        extra_files: more files to include, by name in the artifact.
        zip: also write ``<directory>.zip``.
        overwrite: replace an existing directory instead of failing.
        write_onnx: writes ``model.onnx`` (and ``model.int8.onnx``) into the
            staging directory; what it returns is recorded in the config.
        check_precision: measures the lower precisions against fp32 once every
            file is written; its checks are recorded in the config.
    """
    target = Path(directory).expanduser().resolve()
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists; pass overwrite=True to replace it", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        head = _write_files(loaded, staging, run or {}, extra_files or {})
        onnx, onnx_int8 = write_onnx(staging) if write_onnx else (None, None)
        config = ArtifactConfig(
            spec=loaded.spec,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            versions=library_versions(),
            onnx=onnx,
            onnx_int8=onnx_int8,
            files=manifest(staging),
            head=head,
        )
        if check_precision is not None:
            config = replace(config, precision_checks=check_precision(loaded, staging, config))
        (staging / ARTIFACT_CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
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


def _write_files(loaded: LoadedModel, staging: Path, run: dict, extra_files: dict[str, Path]) -> HeadInfo | None:
    """Write every file but the config and the ONNX graphs; return what the config records of the head."""
    with quiet_transformers():
        loaded.model.backbone.save_pretrained(staging)
    loaded.tokenizer.save_pretrained(staging)
    head = _write_head(loaded, staging)
    write_st_files(staging, loaded.spec, head)
    (staging / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n")
    for name, source in extra_files.items():
        shutil.copyfile(source, staging / name)
    return head


def _write_head(loaded: LoadedModel, staging: Path) -> HeadInfo | None:
    from safetensors.torch import save_file

    head = loaded.model.head
    if head is None:
        return None
    (staging / HEAD_FILE).parent.mkdir(parents=True, exist_ok=True)
    save_file({HEAD_WEIGHT: head.weight.detach().cpu().contiguous()}, str(staging / HEAD_FILE))
    return HeadInfo(file=HEAD_FILE, in_features=head.in_features, out_features=head.out_features)


def zip_artifact(directory: Path) -> Path:
    """Write ``<directory>.zip`` with the artifact's files at the archive root."""
    archive = directory.with_name(f"{directory.name}.zip")  # not with_suffix: 'run.v2' must not become 'run.zip'
    partial = archive.with_name(f".{archive.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as handle:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                # Weights barely compress: storing them is several times faster than deflating.
                stored = path.suffix in (".safetensors", ".onnx")
                handle.write(path, path.relative_to(directory).as_posix(), zipfile.ZIP_STORED if stored else None)
    partial.replace(archive)
    return archive
