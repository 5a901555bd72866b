"""Between request documents and the search core: records in, matches out, shard answers merged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunerflow.errors import DataError
from tunerflow.search.documents import MatchDoc, SearchDoc
from tunerflow.search.records import Match, SearchRecord
from tunerflow.serving.documents import resolve_label


def records_from_docs(docs: Sequence[SearchDoc]) -> list[SearchRecord]:
    """One record per document; refuses an empty request, a document without text and repeated ids."""
    check_not_empty(docs, "documents with a text")
    records = []
    for position, doc in enumerate(docs):
        if not isinstance(doc.text, str) or not doc.text.strip():
            raise DataError(f"document {position} (id {doc.id}) has no text: every indexed document needs one")
        records.append(SearchRecord(str(doc.id), doc.text, resolve_label(doc.label, doc.tags), dict(doc.tags or {})))
    check_unique([r.id for r in records])
    return records


def ids_of_docs(docs: Sequence[SearchDoc]) -> list[str]:
    check_not_empty(docs, "the ids to delete")
    ids = [str(doc.id) for doc in docs]
    check_unique(ids)
    return ids


def check_not_empty(docs: Sequence[Any], what: str) -> None:
    if len(docs) == 0:
        raise DataError(f"empty request: send {what}")


def check_unique(ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = sorted({i for i in ids if i in seen or seen.add(i)})
        raise DataError(f"ids repeated within one request: {twice[:10]}; send each id once")


def query_groups(docs: Sequence[SearchDoc]) -> tuple[list[int], list[str], list[int], np.ndarray | None]:
    """Positions and texts of text queries, positions and matrix of embedding-only queries."""
    check_not_empty(docs, "queries (documents with a text, or an embedding)")
    text_rows, texts, vector_rows, vectors = [], [], [], []
    for position, doc in enumerate(docs):
        if isinstance(doc.text, str) and doc.text.strip():
            text_rows.append(position)
            texts.append(doc.text)
        elif doc.embedding is not None:
            vector_rows.append(position)
            vectors.append(np.asarray(doc.embedding, dtype=np.float32).reshape(-1))
        else:
            raise DataError(f"query {position} (id {doc.id}) has neither a text nor an embedding")
    if vectors and len({len(v) for v in vectors}) > 1:
        raise DataError(f"query embeddings differ in length: {sorted({len(v) for v in vectors})}")
    return text_rows, texts, vector_rows, (np.stack(vectors) if vectors else None)


def set_matches(doc: SearchDoc, matches: Sequence[Match]) -> None:
    from docarray import DocList

    doc.matches = DocList[MatchDoc](
        [
            MatchDoc(
                id=m.record.id,
                text=m.record.text,
                label=m.record.label,
                tags=m.record.tags,
                score=m.score,
                order=m.record.order,
            )
            for m in matches
        ]
    )
    doc.scores = [m.score for m in matches]
    doc.embedding = None  # answers carry matches, not the query's vector


def merge_matches(answers: Sequence[Sequence[SearchDoc]], limit: int, searched: int) -> list[SearchDoc]:
    """One answer per query from every shard's answer: best score first, ties in index order, ``limit`` kept."""
    from docarray import DocList

    merged = []
    for shard_docs in zip(*answers, strict=True):
        candidates = [m for doc in shard_docs for m in (doc.matches or [])]
        candidates.sort(key=lambda m: (-m.score, m.order))
        first = shard_docs[0]
        first.matches = DocList[MatchDoc](candidates[:limit])
        first.scores = [m.score for m in first.matches]
        first.searched = searched
        merged.append(first)
    return merged
