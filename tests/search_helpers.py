"""Deterministic stand-in models and small labelled sets for the search tests."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from tunerflow.search import Embedder, ModelIdentity, SearchRecord


def hashed_embedder(name: str, dimension: int = 16, delay: float = 0.0) -> Embedder:
    """Each word a fixed random vector (seeded by model name and word); a text the sum: equal texts tie."""

    def embed(texts: list[str]) -> np.ndarray:
        if delay:
            time.sleep(delay)
        out = np.zeros((len(texts), dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                seed = int.from_bytes(hashlib.sha256(f"{name}:{word}".encode()).digest()[:4], "little")
                out[row] += np.random.default_rng(seed).normal(size=dimension)
        return out

    return Embedder(ModelIdentity(name, dimension), embed)


def labelled_set(count: int = 120, labels: int = 12, seed: int = 0) -> tuple[list[SearchRecord], list[SearchRecord]]:
    """Index records and query records over a small vocabulary; some texts repeat (exact ties)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(40)]
    topics = [rng.choice(words, size=4, replace=False) for _ in range(labels)]

    def text(label: int) -> str:
        own = list(rng.choice(topics[label], size=2))
        return " ".join(own + list(rng.choice(words, size=2)))

    index = [SearchRecord(f"d{i}", text(i % labels), str(i % labels), {"parity": i % 2}) for i in range(count)]
    index += [SearchRecord(f"d{count + i}", index[i].text, index[i].label) for i in range(6)]  # duplicates: ties
    queries = [SearchRecord(f"q{i}", text(i % labels), str(i % labels)) for i in range(30)]
    return index, queries


def evaluation_set(index: list[SearchRecord], queries: list[SearchRecord]):
    """The same queries and index as an EvaluationSet, for ``evaluate``."""
    from tunerflow.evaluation.evaluator import EvaluationSet

    return EvaluationSet(
        [q.id for q in queries],
        [q.text for q in queries],
        [q.label for q in queries],
        [r.id for r in index],
        [r.text for r in index],
        [r.label for r in index],
    )


def metrics_of_matches(index: list[SearchRecord], queries: list[SearchRecord], matched_ids: list[list[str]]) -> dict:
    """The nine metrics computed from served matches (ids per query), as a user of /search would."""
    from tunerflow.evaluation.metrics import METRIC_NAMES, query_metrics

    labels = {r.id: r.label for r in index}
    counts: dict[str, int] = {}
    for record in index:
        counts[record.label] = counts.get(record.label, 0) + 1
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for query, ids in zip(queries, matched_ids, strict=True):
        relevance = [int(labels[i] == query.label) for i in ids]
        for name, value in query_metrics(relevance, counts[query.label]).items():
            totals[name] += value
    return {f"model_{name}": value / len(queries) for name, value in totals.items()}
