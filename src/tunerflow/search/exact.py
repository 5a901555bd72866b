"""The exact index: every vector in one contiguous matrix, queries batched into matrix products.

Scores are cosine similarities of unit vectors (the metrics' definition), and
the top ``limit`` of each query come from the evaluator's own
:func:`~tunerflow.evaluation.evaluator.top_matches`, so served search and
``evaluate`` rank with one function: best first, ties in index order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunerflow.errors import DataError
from tunerflow.evaluation.evaluator import top_matches
from tunerflow.search.records import Match, SearchRecord, VectorDType, matches_filter, unit_rows

# Score at most this many matrix cells at once (64 MiB of float32): bounds memory for large indexes.
_SCORE_CELLS = 1 << 24
_HALF_BLOCK = 1 << 16


class ExactIndex:
    """Records and their unit vectors, in insertion order.

    Args:
        dimension: size of one vector.
        dtype: storage precision; float16 halves memory, scores are still computed in float32.
    """

    def __init__(self, dimension: int, dtype: VectorDType = VectorDType.FLOAT32) -> None:
        self.dimension = int(dimension)
        self.dtype = VectorDType(dtype)
        self.records: list[SearchRecord] = []
        self._rows: dict[str, int] = {}
        self._matrix = np.empty((0, self.dimension), dtype=self.dtype.value)
        self.version = 0  # bumped on every change; the ANN index rebuilds when it is behind

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._rows

    @property
    def vectors(self) -> np.ndarray:
        """The stored unit vectors (a view: rows ``0..len-1``)."""
        return self._matrix[: len(self.records)]

    def row_of(self, doc_id: str) -> int | None:
        return self._rows.get(doc_id)

    def add(self, records: Sequence[SearchRecord], vectors: np.ndarray) -> None:
        """Append new records (ids not yet stored; the caller checks) and their unit vectors."""
        vectors = self._check_vectors(vectors, len(records))
        start = len(self.records)
        self._reserve(start + len(records))
        self._matrix[start : start + len(records)] = vectors
        for offset, record in enumerate(records):
            self._rows[record.id] = start + offset
            self.records.append(record)
        self.version += 1

    def replace(self, records: Sequence[SearchRecord], vectors: np.ndarray) -> None:
        """Overwrite stored records in place (same ids); each keeps its position and order."""
        vectors = self._check_vectors(vectors, len(records))
        for record, vector in zip(records, vectors, strict=True):
            row = self._rows[record.id]
            record.order = self.records[row].order
            self.records[row] = record
            self._matrix[row] = vector
        self.version += 1

    def delete(self, ids: Sequence[str]) -> None:
        """Remove stored ids (the caller checks they exist); the rest keep their order."""
        rows = sorted({self._rows[doc_id] for doc_id in ids})
        if not rows:
            return
        keep = np.ones(len(self.records), dtype=bool)
        keep[rows] = False
        self._matrix = np.ascontiguousarray(self.vectors[keep])
        self.records = [record for record, kept in zip(self.records, keep, strict=True) if kept]
        self._rows = {record.id: row for row, record in enumerate(self.records)}
        self.version += 1

    def clear(self) -> None:
        self.records, self._rows = [], {}
        self._matrix = np.empty((0, self.dimension), dtype=self.dtype.value)
        self.version += 1

    def scores(self, queries: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarities (queries x stored, or x ``rows``) in float32, as the evaluator computes them."""
        stored = self.vectors if rows is None else self.vectors[rows]
        if stored.dtype == np.float32:
            return queries @ stored.T
        out = np.empty((len(queries), len(stored)), dtype=np.float32)
        for start in range(0, len(stored), _HALF_BLOCK):  # widen float16 a block at a time, not all at once
            out[:, start : start + _HALF_BLOCK] = queries @ stored[start : start + _HALF_BLOCK].astype(np.float32).T
        return out

    def search(
        self, queries: np.ndarray, limit: int, where: dict[str, Any] | None = None, skip_ids: Sequence[str] = ()
    ) -> list[list[Match]]:
        """The ``limit`` best matches of each unit-vector query, best first; ties keep index order.

        Args:
            queries: unit vectors, one row per query.
            limit: matches per query.
            where: a filter from :func:`~tunerflow.search.records.check_filter`; only passing records match.
            skip_ids: per query, a stored id to leave out (the query itself), or ``""``.
        """
        queries = unit_rows(queries)  # normalised once here, as the evaluator does
        rows = None
        if where:
            rows = np.array([r for r, record in enumerate(self.records) if matches_filter(record, where)], dtype=int)
        candidates = len(self.records) if rows is None else len(rows)
        results: list[list[Match]] = []
        step = max(1, _SCORE_CELLS // max(candidates, 1))
        for start in range(0, len(queries), step):
            similarity = self.scores(queries[start : start + step], rows)
            for offset, scores in enumerate(similarity):
                own = self._rows.get(skip_ids[start + offset]) if skip_ids else None
                if own is not None and rows is not None:
                    found = np.flatnonzero(rows == own)
                    own = int(found[0]) if len(found) else None
                picked = top_matches(scores, limit, skip=own)
                positions = picked if rows is None else [int(rows[p]) for p in picked]
                results.append(
                    [Match(self.records[p], float(scores[q])) for p, q in zip(positions, picked, strict=True)]
                )
        return results

    def _check_vectors(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """Already unit vectors (normalised once, by the store: twice would move the last bits)."""
        vectors = np.asarray(vectors)
        if vectors.shape != (count, self.dimension):
            raise DataError(
                f"got vectors of shape {vectors.shape} for {count} documents; this index holds "
                f"{self.dimension}-dimensional vectors"
            )
        return vectors

    def _reserve(self, rows: int) -> None:
        if rows <= len(self._matrix):
            return
        grown = np.empty((max(rows, 2 * len(self._matrix), 1024), self.dimension), dtype=self.dtype.value)
        grown[: len(self.records)] = self.vectors
        self._matrix = grown
