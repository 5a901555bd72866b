"""Data-parallel training on ``torch.distributed``: the ranks of one run and what they share.

The launcher (``torchrun``, see :mod:`tunerflow.runs.launch`) starts one process
per device and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_world` joins the process group from them.

Metric learning needs the whole batch: every rank builds the same global
label-balanced batch (same seed), embeds its contiguous share of it, and
:meth:`World.gather` all-gathers the embeddings *with gradients*, so the loss
and the miner see the global batch on every rank. The gradient scale: every
rank computes the same global loss ``L``; the gather's backward gives each rank
``N * dL/dx_local`` (what summing the ranks' identical gradients would give) and
DDP averages the parameter gradients over the ``N`` ranks, so each rank ends
with exactly ``dL/dtheta``: N ranks at batch B/N train like one process at batch B
(``tests/test_distributed.py`` checks it numerically).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Rank 0 evaluates (and publishes) while the others wait at the next collective: allow for a long evaluation.
WAIT_TIMEOUT = datetime.timedelta(hours=6)


@dataclass
class World:
    """The ranks of a run; one process (rank 0 of 1) unless launched with several.

    Attributes:
        rank: this process's global rank.
        size: the number of processes (devices x nodes).
        local_rank: this process's rank on its machine (its GPU index).
        control: a gloo group for small CPU-side messages (stop reasons, decisions), so that
            they never sync a GPU stream.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    control: Any = None

    @property
    def is_main(self) -> bool:
        """Rank 0: it evaluates, logs, checkpoints and publishes."""
        return self.rank == 0

    def sizes(self, count: int) -> list[int]:
        """How many of ``count`` texts each rank embeds (contiguous shares, the first ones one larger)."""
        return [len(part) for part in np.array_split(np.arange(count), self.size)]

    def share(self, positions: np.ndarray) -> np.ndarray:
        """This rank's contiguous share of a global batch."""
        if self.size == 1:
            return positions
        start = sum(self.sizes(len(positions))[: self.rank])
        return positions[start : start + self.sizes(len(positions))[self.rank]]

    def gather(self, local: torch.Tensor, count: int) -> torch.Tensor:
        """The embeddings of the whole batch of ``count`` texts, in batch order, differentiable.

        Shares may differ by one text; they are padded to the same length for the
        all-gather and trimmed after it.
        """
        if self.size == 1:
            return local
        sizes = self.sizes(count)
        padded = torch.nn.functional.pad(local, (0, 0, 0, max(sizes) - len(local)))
        parts = _GatherWithGradient.apply(padded, self.rank, self.size)
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """Average the gradients of parameters outside DDP (a loss's own weights) over the ranks."""
        if self.size == 1:
            return
        import torch.distributed as dist

        for parameter in parameters:
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad, op=dist.ReduceOp.AVG if parameter.is_cuda else dist.ReduceOp.SUM)
                if not parameter.is_cuda:  # gloo has no AVG
                    parameter.grad /= self.size

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a small picklable object over the control group)."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather_to_main(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order on rank 0 (None elsewhere)."""
        if self.size == 1:
            return [value]
        import torch.distributed as dist

        gathered = [None] * self.size if self.is_main else None
        dist.gather_object(value, gathered, dst=0, group=self.control)
        return gathered


class _GatherWithGradient(torch.autograd.Function):
    """All-gather whose backward gives each rank ``world size x`` the gradient of its own part.

    Every rank computes the same loss from the gathered batch, so the sum over ranks of the
    gradients of this rank's part (what a reduce-scatter would return) is that many times its
    own: no communication is needed. DDP's averaging then leaves exactly ``dL/dtheta``.
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor, rank: int, size: int) -> torch.Tensor:
        import torch.distributed as dist

        ctx.rank, ctx.size = rank, size
        parts = [torch.empty_like(local) for _ in range(size)]
        dist.all_gather(parts, local.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad[ctx.rank] * ctx.size, None, None


def launched() -> bool:
    """True in a process started by the launcher (``torchrun`` sets ``TORCHELASTIC_RUN_ID``)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "RANK" in os.environ


_WORLD = World()


def current_world() -> World:
    """The world this process joined with :func:`init_world` (one process otherwise)."""
    return _WORLD


def init_world(device_type: str) -> World:
    """Join the process group from the launcher's environment (``env://``): nccl on CUDA, gloo on the CPU."""
    global _WORLD
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=WAIT_TIMEOUT)
    control = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT) if backend != "gloo" else dist.group.WORLD
    _WORLD = World(dist.get_rank(), dist.get_world_size(), local_rank, control)
    return _WORLD


def close_world() -> None:
    global _WORLD
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _WORLD = World()


def wrap_model(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``model`` (the loop's :class:`StepForward`, one call per step) under DDP: gradients averaged
    over the ranks, overlapped with the backward pass.

    The buffers (position ids) are constant, so they are not synced at every forward; ranks may cut
    their shares into different numbers of length chunks. Some weights take no part in the
    embedding (a BERT's pooler): ``find_unused_parameters`` lets DDP skip them, at the cost of one
    walk over the autograd graph per forward.
    """
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        forward_sync_buffers=False,
        find_unused_parameters=True,
    )
