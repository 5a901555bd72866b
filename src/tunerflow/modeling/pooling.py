"""Pooling of token embeddings into one vector per text.

The one implementation used for training, ONNX export and inference, so the
tuner and the encoder can never disagree on what ``mean`` means.
"""

from __future__ import annotations

import torch

from tunerflow.errors import ConfigError
from tunerflow.options import Pooling


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """Pool ``hidden`` of shape (batch, seq, dim) over the tokens that ``attention_mask`` keeps.

    Args:
        hidden: last hidden states.
        attention_mask: (batch, seq), 1 for real tokens and 0 for padding.
        mode: ``mean`` (average of real tokens, as sentence-transformers), ``cls``
            (the first token) or ``max`` (element-wise maximum over real tokens).
    """
    if mode is Pooling.CLS:
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode is Pooling.MEAN:
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return summed / counts
    if mode is Pooling.MAX:
        # Padding must never win the maximum; -1e9 keeps the graph ONNX-friendly.
        masked = hidden.masked_fill(mask == 0, -1e9)
        return masked.max(dim=1).values
    raise ConfigError(f"unknown pooling {mode!r}; choose one of: {', '.join(p.value for p in Pooling)}")
