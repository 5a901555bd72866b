"""What the training loop needs (setup) and what it changes (state)."""

from __future__ import annotations

import math
import threading
from collections import deque
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
    forward: torch.nn.Module | None = None  # StepForward(model), under DDP with several ranks; None: built by train
    loss_optimizer: torch.optim.Optimizer | None = (
        None  # the loss's own parameters (loss_optimizer); None: in optimizer
    )
    _batches: dict[int, list[np.ndarray]] = field(default_factory=dict, init=False, repr=False)
    _token_ids: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    # A fast tokenizer is not safe to call from two threads at once (num_workers > 1): "Already borrowed".
    _tokenizing: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer the loop steps: the model's, then the loss's own when there is one."""
        return [self.optimizer] if self.loss_optimizer is None else [self.optimizer, self.loss_optimizer]

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self.recipe.precision)

    def token_ids(self, positions: np.ndarray) -> list[np.ndarray]:
        """Token ids of the records at ``positions``, tokenised once per run (later epochs reuse them)."""
        missing = [int(p) for p in positions if int(p) not in self._token_ids]
        if missing:
            texts = [record.text for record in self.dataset.read(missing)]
            with self._tokenizing:
                tokenized = tokenize(self.tokenizer, texts, self.recipe.max_length)
            for position, ids in zip(missing, tokenized, strict=True):
                self._token_ids[position] = np.asarray(ids, dtype=np.int32)  # 4 bytes a token, not a Python int
        return [self._token_ids[int(p)] for p in positions]

    def step_inputs(self, batches: list[np.ndarray], start: int) -> Iterator[StepInputs]:
        """The inputs of ``batches[start:]``, ``recipe.num_workers`` of them prepared ahead in threads.

        Tokenising and copying the next batches overlaps the model's work on this one (on CUDA the
        copies are asynchronous); with 0 workers each batch is prepared in the loop.
        """
        workers = int(getattr(self.recipe, "num_workers", 0) or 0)
        if workers == 0:
            yield from (self._prepare(index, batches[index]) for index in range(start, len(batches)))
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="tunerflow-feed") as feeder:
            ahead = deque(
                feeder.submit(self._prepare, index, batches[index])
                for index in range(start, min(start + workers, len(batches)))
            )
            for index in range(start, len(batches)):
                current = ahead.popleft().result()
                if index + workers < len(batches):
                    ahead.append(feeder.submit(self._prepare, index + workers, batches[index + workers]))
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


SCHEDULER_OPTIONS = {  # scheduler_options: name -> (what it is, the kind of value)
    "num_warmup_steps": ("steps (or epochs, with scheduler_step epoch) of warm-up, instead of warmup_ratio", int),
    "num_training_steps": ("steps (or epochs) the schedule spans; default: the run's", int),
    "num_cycles": ("cosine waves (cosine: 0.5, cosine_with_restarts: 1)", float),
    "power": ("polynomial: the decay's power (1: linear)", float),
    "lr_end": ("polynomial: the learning rate at the end", float),
}


def check_scheduler_options(options: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown names and values of the wrong kind or sign in ``scheduler_options``."""
    from tunerflow.errors import ConfigError

    for name, value in options.items():
        if name == "scheduler_step":
            raise ConfigError("give scheduler_step as its own option (batch or epoch), not in scheduler_options")
        if name not in SCHEDULER_OPTIONS:
            raise ConfigError(f"unknown scheduler option {name!r}; valid: {', '.join(SCHEDULER_OPTIONS)}")
        kind = SCHEDULER_OPTIONS[name][1]
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not whole):
            raise ConfigError(
                f"scheduler option {name} must be a {'whole ' if kind is int else ''}number, got {value!r}"
            )
        if value < 0 or (name == "num_training_steps" and value < 1) or not math.isfinite(value):
            raise ConfigError(
                f"scheduler option {name} must be {'at least 1' if name == 'num_training_steps' else '>= 0'}"
            )
    return options


def scheduled_learning_rate(recipe: Recipe, state: TrainState) -> float:
    """The learning rate of the next step: the recipe's schedule counted in steps or epochs (``scheduler_step``)."""
    options = recipe.scheduler_options
    if recipe.scheduler_step == "epoch":
        position, total = state.epoch, recipe.epochs
    else:
        position, total = state.step, state.total_steps
    return learning_rate_at(
        position,
        int(options.get("num_training_steps", total)),
        recipe.warmup_ratio,
        recipe.scheduler,
        recipe.learning_rate,
        warmup_steps=options.get("num_warmup_steps"),
        num_cycles=options.get("num_cycles"),
        power=options.get("power", 1.0),
        lr_end=options.get("lr_end", 1e-7),
    )


def learning_rate_at(
    step: int,
    total: int,
    warmup_ratio: float,
    kind: str,
    peak: float,
    *,
    warmup_steps: int | None = None,
    num_cycles: float | None = None,
    power: float = 1.0,
    lr_end: float = 1e-7,
) -> float:
    """The learning rate at ``step`` of ``total``, as transformers' schedules of the same names give it.

    A linear warm-up over ``warmup_steps`` (default ``warmup_ratio * total``) comes first, except for
    ``constant`` and ``none``. Then ``linear`` decays to 0, ``cosine`` follows half a cosine wave
    (``num_cycles`` 0.5), ``cosine_with_restarts`` restarts ``num_cycles`` (1) times, ``polynomial``
    decays to ``lr_end`` with ``power``, ``constant_with_warmup`` stays at ``peak``.
    """
    kind = getattr(kind, "value", kind)
    if kind in ("constant", "none"):
        return peak
    warmup = int(warmup_steps) if warmup_steps is not None else int(warmup_ratio * total)
    if step < warmup:
        return peak * (step + 1) / warmup
    if kind == "constant_with_warmup":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return peak * max(0.0, 1.0 - progress)
    if kind == "cosine":
        cycles = 0.5 if num_cycles is None else num_cycles
        return peak * max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * cycles * progress)))
    if kind == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        cycles = 1.0 if num_cycles is None else num_cycles
        return peak * max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0))))
    if kind == "polynomial":
        if lr_end >= peak:
            return lr_end
        return (peak - lr_end) * (1.0 - progress) ** power + lr_end
    raise ValueError(f"unhandled scheduler {kind!r}")  # Scheduler lists exactly the kinds above
