"""docarray v2 schemas of the search endpoints, shared by the executor and clients (no jina here).

No ``from __future__ import annotations``: pydantic and jina read these annotations at run time.
"""

from typing import Any, Dict, List, Optional

from docarray import DocList
from docarray.documents import TextDoc


class MatchDoc(TextDoc):
    """One match of a query: the stored document and its cosine similarity.

    Attributes:
        label, tags: as indexed.
        score: cosine similarity to the query (higher is closer).
        order: the document's index order, the tie-break of equal scores (merging shards).
    """

    label: Optional[str] = None
    tags: Dict[str, Any] = {}
    score: Optional[float] = None
    order: Optional[float] = None  # a whole number below 2**53; float because protobuf's int is 32 bits


class SearchDoc(TextDoc):
    """A document to index, update or delete, or a query (text, or embedding + the ``model`` parameter).

    Attributes:
        label: optional label (also read from ``tags['finetuner_label']``).
        tags: flat metadata, filterable by exact match.
        matches: filled by ``/search``, best first.
        scores: the matches' scores, in the same order.
        searched: how many stored documents the matches were chosen from (all shards together).
    """

    label: Optional[str] = None
    tags: Dict[str, Any] = {}
    matches: Optional[DocList[MatchDoc]] = None
    scores: Optional[List[float]] = None
    searched: Optional[int] = None
