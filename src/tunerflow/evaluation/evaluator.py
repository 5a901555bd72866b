"""Embed queries and index, retrieve by cosine distance, average the nine metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tunerflow.evaluation.metrics import METRIC_NAMES, METRIC_PREFIX, metric_key, query_metrics

_CHUNK = 512


@dataclass
class EvaluationSet:
    """Queries and (optionally) an index; without an index the queries are their own index.

    Attributes:
        query_ids, query_texts, query_labels: the queries.
        index_ids, index_texts, index_labels: the index, or None.
    """

    query_ids: list[str]
    query_texts: list[str]
    query_labels: list[str]
    index_ids: list[str] | None = None
    index_texts: list[str] | None = None
    index_labels: list[str] | None = None

    @property
    def has_index(self) -> bool:
        return self.index_texts is not None

    @classmethod
    def from_records(cls, queries: Sequence, index: Sequence | None = None) -> EvaluationSet:
        """From records with ``id``, ``text`` and ``label`` (a dataset's, or read from a JSONL split)."""
        return cls(
            query_ids=[r.id for r in queries],
            query_texts=[r.text for r in queries],
            query_labels=[r.label for r in queries],
            index_ids=[r.id for r in index] if index else None,
            index_texts=[r.text for r in index] if index else None,
            index_labels=[r.label for r in index] if index else None,
        )


def evaluate(
    embed: Callable[[list[str]], np.ndarray],
    data: EvaluationSet,
    limit: int = 20,
    exclude_self: bool = True,
    prefix: str = METRIC_PREFIX,
    distance: str = "cosine",
) -> dict[str, float]:
    """Mean of each metric over all queries, named by :func:`metric_key` (``<prefix>_<metric>``).

    Args:
        embed: turns texts into an embedding matrix.
        data: queries and index.
        limit: matches retrieved per query.
        exclude_self: drop a match with the query's own id before keeping ``limit``.
        prefix: the evaluated model's prefix in the metric names.
        distance: ``cosine`` (on unit vectors), ``euclidean`` or ``sqeuclidean`` (on the embeddings as they
            come: with a normalising model all three rank alike).
    """
    distance = getattr(distance, "value", distance)
    if distance not in ("cosine", "euclidean", "sqeuclidean"):
        raise ValueError(f"unknown distance {distance!r}")  # the recipe's Distance enum lists the three
    prepare = _unit if distance == "cosine" else _float32
    queries = prepare(embed(data.query_texts))
    if data.has_index:
        index = prepare(embed(data.index_texts))
        index_ids, index_labels = data.index_ids, data.index_labels
    else:
        index, index_ids, index_labels = queries, data.query_ids, data.query_labels
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    label_counts = Counter(index_labels)
    id_position = {doc_id: position for position, doc_id in enumerate(index_ids)}
    for start in range(0, len(queries), _CHUNK):
        similarity = _scores(queries[start : start + _CHUNK], index, distance)
        for row, scores in enumerate(similarity):
            q = start + row
            own = id_position.get(data.query_ids[q]) if exclude_self else None
            matches = top_matches(scores, limit, skip=own)
            relevance = [int(index_labels[m] == data.query_labels[q]) for m in matches]
            max_rel = label_counts[data.query_labels[q]] - (1 if own is not None else 0)
            for name, value in query_metrics(relevance, max_rel).items():
                totals[name] += value
    count = max(len(queries), 1)
    return {metric_key(name, prefix): total / count for name, total in totals.items()}


def top_matches(scores: np.ndarray, limit: int, skip: int | None = None) -> list[int]:
    """Positions of the ``limit`` highest scores, descending; ties keep index order; ``skip`` dropped."""
    wanted = min(limit + (skip is not None), len(scores))
    if wanted <= 0:
        return []
    negated = -scores
    threshold = np.partition(negated, wanted - 1)[wanted - 1]
    candidates = np.flatnonzero(negated <= threshold)
    ordered = candidates[np.lexsort((candidates, negated[candidates]))]
    return [int(m) for m in ordered if m != skip][:limit]


def _scores(queries: np.ndarray, index: np.ndarray, distance: str) -> np.ndarray:
    """Higher is closer: the cosine similarity, or the negated (squared) euclidean distance."""
    products = queries @ index.T
    if distance == "cosine":
        return products
    squared = (queries**2).sum(1)[:, None] - 2 * products + (index**2).sum(1)[None, :]
    squared = np.maximum(squared, 0.0)
    return -(np.sqrt(squared) if distance == "euclidean" else squared)


def _float32(matrix: np.ndarray) -> np.ndarray:
    return np.asarray(matrix, dtype=np.float32)


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
