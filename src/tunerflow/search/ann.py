"""An approximate index from faiss (HNSW or IVF, inner product on unit vectors), with measured recall.

faiss is an optional dependency (``pip install tunerflow[search]``); the exact
index needs nothing but numpy. The ANN structure is built from the exact
index's matrix and rebuilt when that changes; its recall@10 against exact
search is measured on a sample of the stored vectors after each build.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from tunerflow.errors import ConfigError
from tunerflow.search.exact import ExactIndex
from tunerflow.search.records import SearchBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnOptions:
    """Build and search options of the ANN backends.

    Attributes:
        hnsw_m: graph degree of HNSW.
        ef_construction, ef_search: HNSW beam widths when building and searching.
        ivf_lists: IVF cells (default ~ 4 * sqrt(n)); nprobe: cells visited per query.
        recall_sample: stored vectors used as queries to measure recall@10.
        threads: faiss threads (0: faiss's default).
    """

    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    ivf_lists: int = 0
    nprobe: int = 32
    recall_sample: int = 200
    threads: int = 0


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ConfigError("the hnsw and ivf backends need faiss: pip install 'tunerflow[search]'") from None
    return faiss


class AnnIndex:
    """A faiss index over an :class:`ExactIndex`'s vectors; row numbers are the exact index's rows."""

    def __init__(self, backend: SearchBackend, options: AnnOptions | None = None) -> None:
        self.backend = SearchBackend(backend)
        if self.backend is SearchBackend.EXACT:
            raise ConfigError("AnnIndex is for the hnsw and ivf backends; exact search needs no ANN index")
        self.options = options or AnnOptions()
        self.version = -1
        self.recall_at_10: float | None = None
        self.build_seconds: float | None = None
        self._index = None

    def ensure(self, exact: ExactIndex) -> None:
        """Build (or rebuild) when the exact index changed since the last build."""
        if self.version != exact.version:
            self.build(exact)

    def build(self, exact: ExactIndex) -> None:
        faiss = _faiss()
        if self.options.threads:
            faiss.omp_set_num_threads(self.options.threads)
        started = time.perf_counter()
        vectors = np.ascontiguousarray(exact.vectors, dtype=np.float32)
        dimension = exact.dimension
        if self.backend is SearchBackend.HNSW:
            index = faiss.IndexHNSWFlat(dimension, self.options.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.options.ef_construction
            index.hnsw.efSearch = self.options.ef_search
        else:
            lists = self.options.ivf_lists or max(1, min(int(4 * np.sqrt(max(len(vectors), 1))), len(vectors) // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
            if len(vectors):
                sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: lists * 64]]
                index.train(sample)
            index.nprobe = min(self.options.nprobe, lists)
        if len(vectors):
            index.add(vectors)
        self._index, self.version = index, exact.version
        self.build_seconds = round(time.perf_counter() - started, 3)
        self.recall_at_10 = self.measure_recall(exact)
        log.info(
            "built %s over %d vectors in %.1fs, recall@10 %s",
            self.backend.value,
            len(vectors),
            self.build_seconds,
            self.recall_at_10,
        )

    def search(self, queries: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)`` of shape (queries, limit), best first; rows of -1 pad short answers."""
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), limit)
        order = np.lexsort((rows, -scores), axis=1)  # ties in index order, as the exact search
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)

    def measure_recall(self, exact: ExactIndex, k: int = 10) -> float | None:
        """Mean share of the exact top ``k`` that the ANN top ``k`` finds, over a sample of stored vectors."""
        if len(exact) == 0:
            return None
        k = min(k, len(exact))
        picks = np.random.default_rng(1).permutation(len(exact))[: self.options.recall_sample]
        queries = np.ascontiguousarray(exact.vectors[picks], dtype=np.float32)
        truth = exact.search(queries, k)
        _, found = self.search(queries, k)
        hits = [
            len({m.record.id for m in want} & {exact.records[r].id for r in got if r >= 0})
            for want, got in zip(truth, found, strict=True)
        ]
        return round(float(np.mean(hits)) / k, 4)

    def status(self) -> dict:
        return {"backend": self.backend.value, "recall_at_10": self.recall_at_10, "build_seconds": self.build_seconds}
