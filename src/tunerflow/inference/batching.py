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
    token_ids: list[list[int]], batch_size: int, pad_id: int, max_tokens: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(positions, input_ids, attention_mask)`` for batches of similar lengths.

    Sorting by length keeps padding (wasted compute) small; ``positions`` are
    the indices of the batch's rows in the original order. A batch holds at
    most ``batch_size`` texts and, when ``max_tokens`` is given, at most
    ``max_tokens`` padded tokens (rows × its longest text; a text longer than
    the budget goes alone). So a request's batches depend on its texts, not on
    how the request was cut: long texts go in small batches, short ones in
    large batches.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise DataError(f"max_tokens must be at least 1, got {max_tokens}")
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        width = int(lengths[order[start]])  # the longest of the batch: sorted longest first
        rows = batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // max(width, 1)))
        positions = order[start : start + rows]
        start += len(positions)
        yield positions, *_padded([token_ids[p] for p in positions], width, pad_id)


def _padded(rows: list[list[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` as int64 ``(input_ids, attention_mask)`` padded on the right to ``width``."""
    lengths = np.fromiter((len(ids) for ids in rows), dtype=np.int64, count=len(rows))
    attention_mask = (np.arange(width) < lengths[:, None]).astype(np.int64)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    input_ids[attention_mask.astype(bool)] = np.fromiter(
        (token for ids in rows for token in ids), dtype=np.int64, count=int(lengths.sum())
    )
    return input_ids, attention_mask
