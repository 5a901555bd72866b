"""The embedding model: a transformer backbone followed by pooling."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from tunerflow.modeling.pooling import pool
from tunerflow.options import Pooling, parse_enum


@dataclass(frozen=True)
class ModelSpec:
    """What a consumer must know to reproduce a model's embeddings.

    Attributes:
        base_model: the name or path the weights first came from.
        pooling: how token embeddings are pooled.
        normalize: whether embeddings are L2-normalised after pooling.
        max_length: longest input in tokens; longer texts are truncated.
        dimension: size of one embedding.
    """

    base_model: str
    pooling: Pooling
    normalize: bool
    max_length: int
    dimension: int

    def to_dict(self) -> dict:
        data = asdict(self)
        data["pooling"] = self.pooling.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(
            base_model=str(data["base_model"]),
            pooling=parse_enum(Pooling, data["pooling"], "pooling"),
            normalize=bool(data["normalize"]),
            max_length=int(data["max_length"]),
            dimension=int(data["dimension"]),
        )


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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # Pool in float32 even under autocast: sums over many tokens lose precision in bf16.
        return pool(hidden.float(), attention_mask, self.pooling)
