"""What the search core stores and is asked: documents, the model identity, filters, matches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from tunerflow.errors import DataError

FILTER_FIELDS = ("label", "tags")


class VectorDType(str, Enum):
    """How stored vectors are kept in memory and on disk."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


class SearchBackend(str, Enum):
    """Exact brute force (the default, agrees with ``evaluate``) or a faiss ANN index."""

    EXACT = "exact"
    HNSW = "hnsw"
    IVF = "ivf"


@dataclass(frozen=True)
class ModelIdentity:
    """The model that made a store's vectors: its source (name, directory or artifact) and dimension."""

    name: str
    dimension: int

    def to_dict(self) -> dict:
        return {"name": self.name, "dimension": self.dimension}

    @classmethod
    def from_dict(cls, data: dict) -> ModelIdentity:
        return cls(name=str(data["name"]), dimension=int(data["dimension"]))


@dataclass
class SearchRecord:
    """One indexed document.

    Attributes:
        id: unique within the index.
        text: what was embedded (kept so that a new model can re-embed it).
        label: optional label (the metrics' relevance).
        tags: optional flat metadata, filterable by exact match.
        order: the global insertion order; ties in score keep this order.
    """

    id: str
    text: str
    label: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    order: int = 0

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "label": self.label, "tags": self.tags, "order": self.order}

    @classmethod
    def from_dict(cls, data: dict) -> SearchRecord:
        return cls(data["id"], data["text"], data.get("label"), dict(data.get("tags") or {}), int(data["order"]))


@dataclass(frozen=True)
class Match:
    """One retrieved document and its cosine similarity to the query."""

    record: SearchRecord
    score: float


def check_filter(where: dict[str, Any] | None) -> dict[str, Any]:
    """Validate a filter ``{"label": x, "tags": {key: value}}`` (exact matches); unknown fields are errors."""
    where = dict(where or {})
    unknown = sorted(set(where) - set(FILTER_FIELDS))
    if unknown:
        raise DataError(f"unknown filter field(s) {unknown}: filter on one of {list(FILTER_FIELDS)}")
    if "tags" in where and not isinstance(where["tags"], dict):
        raise DataError(f"filter 'tags' must be an object of tag: value, got {where['tags']!r}")
    if "label" in where:
        where["label"] = normalise_value(where["label"])
    return where


def matches_filter(record: SearchRecord, where: dict[str, Any]) -> bool:
    """Whether ``record`` passes a filter checked by :func:`check_filter`."""
    if "label" in where and record.label != where["label"]:
        return False
    for key, value in where.get("tags", {}).items():
        if key not in record.tags or normalise_value(record.tags[key]) != normalise_value(value):
            return False
    return True


def normalise_value(value: Any) -> Any:
    """Protobuf turns ints into floats: compare 3 and 3.0 as equal; labels compare as strings."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to length 1, as the evaluator does (cosine = dot product)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise DataError(f"expected a matrix of embeddings (rows x dimension), got shape {matrix.shape}")
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
