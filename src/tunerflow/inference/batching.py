"""Tokenise once, sort by length, pad per batch, restore the caller's order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from tunerflow.errors import DataError


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, or raise DataError naming the first entry that is not a string."""
    if isinstance(texts, str):
        raise DataError("expected a list of texts, got one string; wrap it in a list")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"text {index} is {type(text).__name__}, not a string")
    return texts


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``, no padding."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=False, return_attention_mask=False)
    return encoded["input_ids"]


def length_sorted_batches(
    token_ids: list[list[int]], batch_size: int, pad_id: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(positions, input_ids, attention_mask)`` for batches of similar lengths.

    Sorting by length keeps padding (wasted compute) small; ``positions`` are
    the indices of the batch's rows in the original order.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        width = int(lengths[positions].max())
        input_ids = np.full((len(positions), width), pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(positions), width), dtype=np.int64)
        for row, position in enumerate(positions):
            ids = token_ids[position]
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        yield positions, input_ids, attention_mask
