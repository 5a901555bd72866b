"""What the training loop needs (setup) and what it changes (state)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tunerflow.data.sampler import LabelBalancedBatches
from tunerflow.data.store import Dataset
from tunerflow.inference.batching import length_sorted_batches, tokenize
from tunerflow.modeling.embedding_model import EmbeddingModel
from tunerflow.options import Precision
from tunerflow.training.recipe import Recipe


@dataclass
class TrainSetup:
    """The fixed parts of a run, built once from the recipe."""

    recipe: Recipe
    model: EmbeddingModel
    tokenizer: Any
    loss_fn: torch.nn.Module
    miner: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    sampler: LabelBalancedBatches
    dataset: Dataset
    labels: np.ndarray
    device: torch.device
    scaler: torch.amp.GradScaler | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self.recipe.precision)

    def length_chunks(self, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Tokenise ``texts`` into ``(rows, input_ids, attention_mask)`` chunks of similar lengths.

        A label-balanced batch mixes short and long texts; padding all of them to
        the longest wastes compute on padding tokens. Sorted by length and cut into
        chunks of ``recipe.forward_chunk`` texts, each chunk is padded only to its
        own longest text; ``rows`` says where each chunk's texts sit in the batch.
        The loss still sees the whole batch at once.
        """
        ids = tokenize(self.tokenizer, texts, self.recipe.max_length)
        pad_id = int(self.tokenizer.pad_token_id or 0)
        return [
            tuple(torch.from_numpy(array).to(self.device, non_blocking=True) for array in chunk)
            for chunk in length_sorted_batches(ids, self.recipe.forward_chunk or len(ids), pad_id)
        ]


@dataclass
class TrainState:
    """Everything that changes during a run and is saved in a checkpoint (JSON-serialisable)."""

    steps_per_epoch: list[int]
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done
    batch_in_epoch: int = 0  # batches done in the current epoch
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)  # {"stage", "epoch", "metrics"}
    best_epoch: int | None = None
    best_value: float | None = None
    epochs_without_improvement: int = 0
    stop_reason: str | None = None

    @property
    def total_steps(self) -> int:
        return sum(self.steps_per_epoch)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> TrainState:
        return cls(**data)


def learning_rate_at(step: int, total: int, warmup_ratio: float, kind: str, peak: float) -> float:
    """Linear warm-up over ``warmup_ratio * total`` steps, then ``linear`` decay, ``cosine`` or ``constant``."""
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return peak * (step + 1) / warmup
    if kind == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return peak * max(0.0, 1.0 - progress)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
