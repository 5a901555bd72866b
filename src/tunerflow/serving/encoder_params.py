"""Request parameters of the EncoderExecutor."""

from __future__ import annotations

from typing import Optional

from pydantic import conint

from tunerflow.serving.parameters import StrictParameters


class EncodeParameters(StrictParameters):
    """Parameters of ``/encode``.

    Attributes:
        batch_size: texts per forward pass for this request (default: the executor's).
        normalize: L2-normalise the embeddings (default: the model's setting).
    """

    batch_size: Optional[conint(ge=1, le=4096)] = None
    normalize: Optional[bool] = None
