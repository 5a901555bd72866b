"""The reference tool's local API: ``get_model``, ``build_model``, ``encode``, ``cos_sim``, ``list_callbacks``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunerflow.errors import ConfigError, DataError
from tunerflow.inference.base import InferenceBackend
from tunerflow.inference.factory import open_backend
from tunerflow.modeling.sources import BUNDLED_MODEL
from tunerflow.options import Backend

# What ``select_model`` may name: an artifact here holds one text model (the reference tool's CLIP
# artifacts held two, ``clip-text`` and ``clip-vision``).
SINGLE_MODEL = "model"
# What ``build_model``'s ``model_options`` may set (the model's own settings; see ModelSpec).
MODEL_OPTIONS = ("pooling", "normalize", "max_length")


def get_model(
    artifact: str | Path = BUNDLED_MODEL,
    token: str | None = None,
    batch_size: int = 32,
    select_model: str | None = None,
    device: str | None = None,
    logging_level: str | int | None = None,
    is_onnx: bool = False,
    *,
    backend: str | Backend | None = None,
    **options: Any,
) -> InferenceBackend:
    """Load a model for inference, as ``finetuner.get_model`` does (its arguments in its order).

    Args:
        artifact: an artifact directory or ``.zip``, a model directory, a hub id
            available locally, or the bundled ``all-MiniLM-L6-v2``.
        token: accepted and ignored: artifacts are local files, no account is needed.
        batch_size: texts per forward pass.
        select_model: None (or ``'model'``): an artifact holds one model.
        device: ``cpu`` (default; also for None), ``cuda`` or ``cuda:N`` (no silent fallback).
        logging_level: when given, the level of tunerflow's loggers (``'WARNING'``, ``'INFO'``, ...).
        is_onnx: use the ONNX Runtime backend (the artifact's ``model.onnx``).
        backend: ``torch``, ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8`` or ``auto`` (the fastest
            path for this CPU that the artifact has and whose quality it recorded; the model's ``auto`` says
            why); overrides ``is_onnx``.
        options: ``dtype`` (torch and openvino; ``auto``: bfloat16 where the CPU has native bf16),
            ``max_tokens``, ``threads``, ``pooling``, ``normalize``, ``max_length``, ``allow_download``.
    """
    check_select_model(select_model)
    if logging_level is not None:
        set_logging_level(logging_level)
    chosen = backend if backend is not None else (Backend.ONNX if is_onnx else Backend.TORCH)
    return open_backend(artifact, chosen, device=device or "cpu", batch_size=batch_size, **options)


def build_model(
    name: str,
    model_options: dict[str, Any] | None = None,
    batch_size: int = 32,
    select_model: str | None = None,
    device: str | None = None,
    is_onnx: bool = False,
) -> InferenceBackend:
    """A model as it is before fine-tuning, for inference, by its catalogue name (``finetuner.build_model``).

    Args:
        name: a model of the local catalogue (see :func:`tunerflow.describe_models`); artifacts are
            fine-tuned already: open them with :func:`get_model`.
        model_options: the model's settings: ``pooling``, ``normalize``, ``max_length``.
        batch_size, select_model, device, is_onnx: as :func:`get_model` takes them.
    """
    from tunerflow.modeling.catalogue import Catalogue
    from tunerflow.settings import section

    check_select_model(select_model)
    aliases = {"pooler": "pooling", "max_seq_length": "max_length"}  # the reference tool's names, as fit takes them
    model_options = {aliases.get(key, key): value for key, value in (model_options or {}).items()}
    unknown = sorted(set(model_options) - set(MODEL_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown model option(s) {', '.join(unknown)}; choose from: {', '.join(MODEL_OPTIONS)}")
    # On one's own machine a local directory is fine (as for get_model); names come from the catalogue.
    source = Catalogue.from_settings(section("models")).resolve(name, trusted=Path(str(name)).expanduser().exists())
    if source.is_artifact:
        raise ConfigError(f"{name!r} is a fine-tuned artifact; build_model builds base models: use get_model")
    backend = Backend.ONNX if is_onnx else Backend.TORCH
    return open_backend(source.path, backend, device=device or "cpu", batch_size=batch_size, **(model_options or {}))


def check_select_model(select_model: str | None) -> None:
    if select_model is not None and select_model != SINGLE_MODEL:
        raise ConfigError(
            f"select_model {select_model!r}: a tunerflow artifact holds one text model; "
            f"pass select_model=None (or {SINGLE_MODEL!r})"
        )


def set_logging_level(level: str | int) -> None:
    """Set the level of the ``tunerflow`` loggers (a level name or number; ConfigError for anything else)."""
    import logging

    value = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"unknown logging_level {level!r}; choose DEBUG, INFO, WARNING, ERROR or CRITICAL")
    logging.getLogger("tunerflow").setLevel(value)


def cos_sim(a: Any, b: Any) -> Any:
    """Cosine similarity of two vectors (a float), a vector and rows (one per row), or two sets of rows (a matrix).

    A zero vector has similarity 0 with everything.
    """
    import numpy as np

    left, right = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if left.ndim not in (1, 2) or right.ndim not in (1, 2) or left.shape[-1] != right.shape[-1]:
        raise DataError(f"cos_sim needs vectors or rows of one length, got shapes {left.shape} and {right.shape}")
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    scores = unit(left) @ unit(right).T
    return float(scores) if scores.ndim == 0 else scores


def list_callbacks() -> dict[str, type]:
    """The callbacks ``fit`` takes, by name, as the reference tool lists them (from :mod:`tunerflow.callback`)."""
    import importlib
    import inspect

    module = importlib.import_module("tunerflow.callback")
    names = getattr(module, "__all__", None)
    return {
        name: value
        for name, value in inspect.getmembers(module, inspect.isclass)
        if (name in names if names is not None else value.__module__ == module.__name__)
    }


def encode(model: InferenceBackend | str | Path, data: Any, batch_size: int | None = None) -> Any:
    """Embed ``data`` with ``model``, as ``finetuner.encode`` does.

    Args:
        model: a model from :func:`get_model`, or anything :func:`get_model` takes.
        data: a docarray ``DocList`` of documents with ``text`` (their
            ``embedding`` is set in place and the DocList returned), or a list
            of strings (a float32 array of shape ``(n, dim)`` is returned).
        batch_size: overrides the model's batch size.
    """
    if not isinstance(model, InferenceBackend):
        model = get_model(model)
    if _is_doclist(data):
        texts = texts_of_docs(data)
        embeddings = model.embed(texts, batch_size=batch_size)
        for doc, row in zip(data, embeddings, strict=True):
            doc.embedding = row
        return data
    return model.embed(data, batch_size=batch_size)


def texts_of_docs(docs: Any) -> list[str]:
    """The ``text`` of each document, or DataError naming the first one without text."""
    texts = []
    for index, doc in enumerate(docs):
        text = getattr(doc, "text", None)
        if not isinstance(text, str):
            raise DataError(f"document {index} (id {getattr(doc, 'id', '?')}) has no text")
        texts.append(text)
    return texts


def _is_doclist(data: Any) -> bool:
    if not type(data).__module__.startswith("docarray"):
        return False
    from docarray import DocList

    return isinstance(data, DocList)


__all__ = ["build_model", "cos_sim", "encode", "get_model", "list_callbacks", "texts_of_docs"]
