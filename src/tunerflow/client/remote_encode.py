"""Embed texts with a served encoder (``/encode``) over gRPC or HTTP."""

from __future__ import annotations

import numpy as np

from tunerflow.client.connection import Connection


def remote_encode(
    texts: list[str], host: str | None = None, batch_size: int = 256, api_key: str | None = None
) -> np.ndarray:
    """Embeddings of ``texts`` from the Flow's encoder, in order (key: ``api_key`` or ``$TUNERFLOW_API_KEY``)."""
    return Connection(host, api_key).encode(texts, batch_size=batch_size)
