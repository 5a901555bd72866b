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
