"""The reference tool's inference API: ``get_model`` and ``encode``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunerflow.errors import DataError
from tunerflow.inference.base import InferenceBackend
from tunerflow.inference.factory import open_backend
from tunerflow.modeling.sources import BUNDLED_MODEL
from tunerflow.options import Backend


def get_model(
    artifact: str | Path = BUNDLED_MODEL,
    is_onnx: bool = False,
    *,
    backend: str | Backend | None = None,
    device: str = "cpu",
    **options: Any,
) -> InferenceBackend:
    """Load a model for inference, as ``finetuner.get_model`` does.

    Args:
        artifact: an artifact directory or ``.zip``, a model directory, a hub id
            available locally, or the bundled ``all-MiniLM-L6-v2``.
        is_onnx: use the ONNX Runtime backend (the artifact's ``model.onnx``).
        backend: ``torch``, ``onnx`` or ``onnx-int8``; overrides ``is_onnx``.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (no silent fallback).
        options: ``dtype`` (``auto``: bfloat16 where the CPU has native bf16), ``batch_size``,
            ``max_tokens``, ``threads``, ``pooling``,
            ``normalize``, ``max_length``, ``allow_download``.
    """
    chosen = backend if backend is not None else (Backend.ONNX if is_onnx else Backend.TORCH)
    return open_backend(artifact, chosen, device=device, **options)


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


__all__ = ["encode", "get_model", "texts_of_docs"]
