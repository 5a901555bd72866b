"""What the training loop needs (setup) and what it changes (state)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
from tunerflow.training.distributed import World
from tunerflow.training.recipe import Recipe

Chunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # rows in the share, input ids, attention mask


@dataclass
class StepInputs:
    """One step's inputs on this rank: its share of the global batch, tokenised, on the device."""

    index: int  # the batch's index in the epoch
    size: int  # texts in the global batch
    labels: torch.Tensor  # labels of the global batch (the loss sees all of it)
    share: int  # texts this rank embeds
    chunks: list[Chunk]


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
    world: World = field(default_factory=World)
    forward: torch.nn.Module | None = None  # the model as trained (under DDP with several ranks); None: model
    _batches: dict[int, list[np.ndarray]] = field(default_factory=dict, init=False, repr=False)
    _token_ids: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self.recipe.precision)

    def token_ids(self, positions: np.ndarray) -> list[np.ndarray]:
        """Token ids of the records at ``positions``, tokenised once per run (later epochs reuse them)."""
        missing = [int(p) for p in positions if int(p) not in self._token_ids]
        if missing:
            texts = [record.text for record in self.dataset.read(missing)]
            for position, ids in zip(missing, tokenize(self.tokenizer, texts, self.recipe.max_length), strict=True):
                self._token_ids[position] = np.asarray(ids, dtype=np.int32)  # 4 bytes a token, not a Python int
        return [self._token_ids[int(p)] for p in positions]

    def step_inputs(self, batches: list[np.ndarray], start: int) -> Iterator[StepInputs]:
        """The inputs of ``batches[start:]``; on CUDA the next one is prepared in a thread while the GPU works."""
        if self.device.type != "cuda":
            yield from (self._prepare(index, batches[index]) for index in range(start, len(batches)))
            return
        with ThreadPoolExecutor(1, thread_name_prefix="tunerflow-feed") as feeder:
            upcoming = feeder.submit(self._prepare, start, batches[start]) if start < len(batches) else None
            for index in range(start, len(batches)):
                current = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = feeder.submit(self._prepare, index + 1, batches[index + 1])
                yield current

    def _prepare(self, index: int, positions: np.ndarray) -> StepInputs:
        share = self.world.share(positions)
        labels = self._to_device(self.labels[positions].astype("int64"))
        return StepInputs(index, len(positions), labels, len(share), self.chunks(self.token_ids(share)))

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()  # page-locked: the copy runs asynchronously
        return tensor.to(self.device, non_blocking=True)

    def length_chunks(self, texts: list[str]) -> list[Chunk]:
        """Tokenise ``texts`` into chunks of similar lengths (see :meth:`chunks`)."""
        return self.chunks(tokenize(self.tokenizer, texts, self.recipe.max_length))

    def chunks(self, ids: list[np.ndarray]) -> list[Chunk]:
        """Token ids into ``(rows, input_ids, attention_mask)`` chunks of similar lengths.

        A label-balanced batch mixes short and long texts; padding all of them to
        the longest wastes compute on padding tokens. Sorted by length and cut into
        chunks of ``recipe.forward_chunk`` texts, each chunk is padded only to its
        own longest text; ``rows`` says where each chunk's texts sit in the batch.
        The loss still sees the whole batch at once.
        """
        pad_id = int(self.tokenizer.pad_token_id or 0)
        return [
            tuple(self._to_device(array) for array in chunk)
            for chunk in length_sorted_batches(ids, self.recipe.forward_chunk or len(ids), pad_id)
        ]

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The batches (record positions) of ``epoch``, built once: the step count and the loop share them.

        With several ranks, a batch of fewer texts than ranks (possible at an epoch's end) is left out:
        every rank must embed at least one text of every step.
        """
        if epoch not in self._batches:
            batches = self.sampler.epoch(epoch)
            self._batches[epoch] = [b for b in batches if len(b) >= self.world.size]
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
