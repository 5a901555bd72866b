"""The token-embedding table's gradient, gathered row by row instead of as one dense table per chunk.

A step embeds its batch in several length chunks (``forward_chunk``). For each chunk, the dense
backward of ``nn.Embedding`` allocates and zero-fills a gradient the size of the whole vocabulary
(30,522 x 384 floats for the bundled model) to add a few hundred rows into it, and autograd then
adds those tables together. On a 2-core CPU that fill was 75 ms a chunk, ~300 ms of a 1.7 s step
(bench/RESULTS.md, "Where a training step's time goes").

:func:`token_gradients_gathered` makes the table's backward sparse (the rows the chunk used) and
accumulates those rows into one dense buffer kept for the whole run: zeroed once a step, in memory
that is already resident. The optimizer, gradient clipping and checkpoints see the same dense
gradient as before; the update is the same (float rounding aside: the rows are summed in another
order).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def token_gradients_gathered(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Within the block, the token-embedding table of ``model``'s backbone accumulates sparse rows into a
    dense buffer; after it the table is dense again (as an ONNX export expects). Yields whether it
    applied: not when disabled, without an ``nn.Embedding`` input table, or with a frozen one."""
    backbone = getattr(model, "backbone", model)
    table = backbone.get_input_embeddings() if enabled and hasattr(backbone, "get_input_embeddings") else None
    if not isinstance(table, nn.Embedding) or not table.weight.requires_grad or table.sparse:
        yield False
        return
    dense: torch.Tensor | None = None  # the gradient buffer, allocated at the first step

    def densify(parameter: torch.Tensor) -> None:
        # After each chunk's accumulation. The first of a step finds .grad sparse (it was None): copy its
        # rows into the zeroed buffer and make that .grad; later chunks add their rows to it in place.
        nonlocal dense
        grad = parameter.grad
        if grad is None or not grad.is_sparse:
            return
        if dense is None:
            dense = torch.zeros_like(parameter, memory_format=torch.contiguous_format)
        dense.zero_()
        dense.add_(grad)
        parameter.grad = dense

    table.sparse = True
    handle = table.weight.register_post_accumulate_grad_hook(densify)
    try:
        yield True
    finally:
        handle.remove()
        table.sparse = False
