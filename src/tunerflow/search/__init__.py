"""Text-to-text search with a served model: a persistent exact (or faiss ANN) index, never mixing two models.

Never imports jina; the executor in ``executors/indexer`` is a thin layer over
:class:`~tunerflow.search.searcher.Searcher`.
"""

from __future__ import annotations

from tunerflow.search.exact import ExactIndex
from tunerflow.search.records import Match, ModelIdentity, SearchBackend, SearchRecord, VectorDType
from tunerflow.search.searcher import Embedder, Searcher, shard_of
from tunerflow.search.store import VectorStore

__all__ = [
    "Embedder",
    "ExactIndex",
    "Match",
    "ModelIdentity",
    "SearchBackend",
    "SearchRecord",
    "Searcher",
    "VectorDType",
    "VectorStore",
    "shard_of",
]
