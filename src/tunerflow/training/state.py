"""What the training loop needs (setup) and what it changes (state)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
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
    _batches: dict[int, list[np.ndarray]] = field(default_factory=dict, init=False, repr=False)

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

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The batches (record positions) of ``epoch``, built once: the step count and the loop share them."""
        if epoch not in self._batches:
            self._batches[epoch] = self.sampler.epoch(epoch)
        return self._batches[epoch]


class StopReason(str, Enum):
    """Why the loop stopped before the recipe's last epoch."""

    CANCELLED = "cancelled"  # asked by the user: the run ends
    SHUTDOWN = "shutdown"  # the process is closing: the run resumes from its checkpoint later
    EARLY_STOPPING = "early stopping"  # no improvement for ``early_stopping_patience`` epochs: the run is done

    @property
    def interrupts(self) -> bool:
        """True when training was cut short from outside, not finished by the loop's own rule."""
        return self in (StopReason.CANCELLED, StopReason.SHUTDOWN)


@dataclass
class TrainState:
    """Everything that changes during a run and is saved in a checkpoint (JSON-serialisable)."""

    steps_per_epoch: list[int]
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done
    batch_in_epoch: int = 0  # batches done in the current epoch (non-zero in a checkpoint of a stopped run)
    texts_trained: int = 0  # texts in the batches trained so far
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)  # {"stage", "epoch", "metrics"}
    best_epoch: int | None = None
    best_value: float | None = None
    epochs_without_improvement: int = 0
    stop_reason: StopReason | None = None

    @property
    def total_steps(self) -> int:
        return sum(self.steps_per_epoch)

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["stop_reason"] = self.stop_reason.value if self.stop_reason else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainState:
        data = dict(data)
        data["stop_reason"] = StopReason(data["stop_reason"]) if data.get("stop_reason") else None
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
