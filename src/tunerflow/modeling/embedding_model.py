"""The embedding model: a transformer backbone followed by pooling."""

from __future__ import annotations

import torch
from torch import nn

from tunerflow.format import Architecture, ModelSpec
from tunerflow.modeling.pooling import pool
from tunerflow.options import Pooling

__all__ = ["EmbeddingModel", "ModelSpec"]  # ModelSpec lives in tunerflow.format; kept here for old imports


class EmbeddingModel(nn.Module):
    """``backbone`` (a Hugging Face encoder) then :func:`pool`.

    ``forward`` takes only ``input_ids`` and ``attention_mask`` (token type ids
    are zeros for single texts), which is also the ONNX graph's signature.
    Normalisation is not part of the graph: it is applied after pooling by the
    inference backends and by the losses' distances, so one ONNX file serves
    both settings.
    """

    def __init__(self, backbone: nn.Module, pooling: Pooling) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling

    @property
    def dimension(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def architecture(self) -> Architecture:
        """The backbone's limits, which :meth:`ModelSpec.check` holds a spec to."""
        return Architecture.from_hf_config(self.backbone.config.to_dict())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # Pool in float32 even under autocast: sums over many tokens lose precision in bf16.
        return pool(hidden.float(), attention_mask, self.pooling)
