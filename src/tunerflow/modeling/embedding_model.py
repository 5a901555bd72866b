"""The embedding model: a transformer backbone followed by pooling and an optional projection head."""

from __future__ import annotations

import torch
from torch import nn

from tunerflow.errors import ConfigError
from tunerflow.format import Architecture, ModelSpec
from tunerflow.modeling.pooling import pool
from tunerflow.options import Pooling

__all__ = ["EmbeddingModel", "ModelSpec"]  # ModelSpec lives in tunerflow.format; kept here for old imports


class EmbeddingModel(nn.Module):
    """``backbone`` (a Hugging Face encoder) then :func:`pool`, then ``head`` if there is one.

    The head (a run's ``output_dim``) is a linear map without bias from the
    hidden size to the output dimension. No bias: one vector added to every
    embedding changes no cosine and no distance between two of them, and
    without it the head is sentence-transformers' ``Dense(bias=False)``
    with an identity activation, so the artifact opens there unchanged.

    ``forward`` takes only ``input_ids`` and ``attention_mask`` (token type ids
    are zeros for single texts), which is also the ONNX graph's signature;
    training may pass the token vectors it looked up already (``inputs_embeds``).
    Normalisation is not part of the graph: it is applied after pooling by the
    inference backends and by the losses' distances, so one ONNX file serves
    both settings.
    """

    def __init__(self, backbone: nn.Module, pooling: Pooling, head: nn.Linear | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = head

    @property
    def hidden_size(self) -> int:
        """Size of the pooled embedding, before the head."""
        return int(self.backbone.config.hidden_size)

    @property
    def dimension(self) -> int:
        """Size of one embedding: the head's output, else the hidden size."""
        return int(self.head.out_features) if self.head is not None else self.hidden_size

    def attach_head(self, output_dim: int, weight: torch.Tensor | None = None) -> None:
        """Add the projection head to ``output_dim`` (``weight``: its saved (output_dim, hidden) weight;
        None: torch's default initialisation, seeded by the caller)."""
        head = nn.Linear(self.hidden_size, output_dim, bias=False)
        if weight is not None:
            if tuple(weight.shape) != (output_dim, self.hidden_size):
                raise ValueError(
                    f"head weight has shape {tuple(weight.shape)}, expected {(output_dim, self.hidden_size)}"
                )
            with torch.no_grad():
                head.weight.copy_(weight)
        device = next(self.backbone.parameters()).device
        self.head = head.to(device)

    @property
    def architecture(self) -> Architecture:
        """The backbone's limits, which :meth:`ModelSpec.check` holds a spec to."""
        return Architecture.from_hf_config(self.backbone.config.to_dict())

    def freeze(self) -> list[str]:
        """Freeze all layers except the last one (the reference tool's ``freeze``); return what still trains.

        With a head, the head is the last layer: the whole backbone is frozen. Without one,
        the backbone's last transformer layer (the last block of its longest layer list,
        ``encoder.layer`` in BERT) trains and everything before it (embeddings, earlier
        layers) is frozen. Frozen parameters have ``requires_grad`` False.
        """
        if self.head is not None:
            last: nn.Module = self.head
        else:
            stacks = [module for module in self.backbone.modules() if isinstance(module, nn.ModuleList) and len(module)]
            if not stacks:
                raise ConfigError(f"freeze: {type(self.backbone).__name__} has no list of layers to keep the last of")
            last = max(stacks, key=len)[-1]
        keep = {id(parameter) for parameter in last.parameters()}
        for parameter in self.parameters():
            parameter.requires_grad_(id(parameter) in keep)
        return [name for name, parameter in self.named_parameters() if parameter.requires_grad]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embeddings of ``input_ids``; with ``inputs_embeds``, of those token vectors (looked up already,
        as :class:`~tunerflow.training.step_forward.StepForward` does for a whole step at once)."""
        if inputs_embeds is None:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            hidden = self.backbone(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        # Pool in float32 even under autocast: sums over many tokens lose precision in bf16.
        pooled = pool(hidden.float(), attention_mask, self.pooling)
        return self.head(pooled) if self.head is not None else pooled
