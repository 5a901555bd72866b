"""Save an artifact with its ONNX files: :func:`tunerflow.artifact.save_artifact` plus the export."""

from __future__ import annotations

from pathlib import Path

from tunerflow.artifact import save_artifact as save_plain_artifact
from tunerflow.artifact.save import OnnxWriter, PrecisionChecker
from tunerflow.export.onnx_export import export_onnx
from tunerflow.export.quantize import quantize_int8
from tunerflow.format import ONNX_FILE, ONNX_INT8_FILE
from tunerflow.modeling.loading import LoadedModel


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
    check_precision: PrecisionChecker | None = None,
) -> Path:
    """Save ``loaded`` as an artifact directory, with ONNX files if asked, and return its path.

    Args:
        loaded: the model, tokenizer and spec to save.
        directory: the artifact directory to create.
        run: run metadata and metrics for ``run.json`` (empty without a run).
        to_onnx: also export ``model.onnx`` (checked for parity with PyTorch).
        int8: also write ``model.int8.onnx`` (implies ``to_onnx``) and record
            its cosine to fp32 on ``probe_texts``.
        probe_texts: texts for the int8 cosine (default: a built-in set).
        extra_files: more files to include, by name in the artifact.
        zip: also write ``<directory>.zip``.
        overwrite: replace an existing directory instead of failing.
        check_precision: measures the lower precisions against fp32 once the files
            are written (publication passes :func:`tunerflow.runs.precision.precision_checker`).
    """
    return save_plain_artifact(
        loaded,
        directory,
        run=run,
        extra_files=extra_files,
        zip=zip,
        overwrite=overwrite,
        write_onnx=onnx_writer(loaded, int8, probe_texts) if to_onnx or int8 else None,
        check_precision=check_precision,
    )


def onnx_writer(loaded: LoadedModel, int8: bool, probe_texts: list[str] | None) -> OnnxWriter:
    """What writes ``model.onnx`` (and, with ``int8``, ``model.int8.onnx``) into a staging directory."""

    def write(staging: Path):
        onnx = export_onnx(loaded, staging / ONNX_FILE)
        onnx_int8 = quantize_int8(loaded, staging / ONNX_FILE, staging / ONNX_INT8_FILE, probe_texts) if int8 else None
        return onnx, onnx_int8

    return write
