"""Side concerns of the loop as callbacks: progress, cancellation, checkpoints.

Hooks are no-ops unless overridden. Callbacks only report and ask to stop; none
reads what another one wrote, so their order in the list does not matter. The
best epoch, its weights and early stopping are decided in one place before the
callbacks hear of an epoch's end (:mod:`tunerflow.training.selection`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunerflow.training.state import StopReason, TrainSetup, TrainState


class Callback:
    """Base class: override the hooks you need."""

    def on_train_begin(self, setup: TrainSetup, state: TrainState) -> None: ...

    def on_epoch_begin(self, setup: TrainSetup, state: TrainState) -> None: ...

    def on_step_end(self, setup: TrainSetup, state: TrainState, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, setup: TrainSetup, state: TrainState) -> None: ...

    def on_train_end(self, setup: TrainSetup, state: TrainState) -> None: ...


def fire(callbacks: list[Callback], hook: str, *args) -> None:
    for callback in callbacks:
        getattr(callback, hook)(*args)


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress(Callback):
    """Logs a progress line (epoch, step/total, loss, docs/s, ETA) every ``every_seconds``.

    Speed and ETA count training time only (evaluations between epochs are left
    out); docs/s counts the texts actually trained (a batch may hold fewer than
    ``batch_size``). ``loss.item()`` is a device sync point, so it is read only
    when a line is written. The latest values are kept in :attr:`latest` for
    status queries.

    Args:
        log: where the lines go.
        every_seconds: the least time between two lines.
        clock: the time source (seconds).
        sink: also hears every update of :attr:`latest` (a launched worker writes them for the tuner).
    """

    def __init__(
        self,
        log: logging.Logger,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sink: Callable[[dict], None] | None = None,
    ) -> None:
        self.log, self.every_seconds, self.clock, self.sink = log, every_seconds, clock, sink
        self.latest: dict = {}
        self._mark = self._last = 0.0
        self._train_seconds = 0.0
        self._steps = 0
        self._texts_at_start = 0

    def on_train_begin(self, setup, state):
        self._texts_at_start = state.texts_trained  # a resumed run counts only this process's texts
        self.log.info(
            "training: %d epochs, %d steps (%s), %d texts in %d labels usable, %d singletons unused",
            setup.recipe.epochs,
            state.total_steps,
            ", ".join(str(n) for n in state.steps_per_epoch),
            setup.sampler.usable,
            len(setup.sampler.groups),
            setup.sampler.unused,
        )

    def on_epoch_begin(self, setup, state):
        self._mark = self.clock()
        self._last = self._last or self._mark

    def on_step_end(self, setup, state, loss):
        now = self.clock()
        self._train_seconds += now - self._mark
        self._mark = now
        self._steps += 1
        if now - self._last < self.every_seconds and state.step != state.total_steps:
            return
        self._last = now
        texts = state.texts_trained - self._texts_at_start
        rate = texts / self._train_seconds if self._train_seconds else 0.0
        eta = self._train_seconds / self._steps * (state.total_steps - state.step)
        self.latest = {
            "epoch": state.epoch + 1,
            "epochs": setup.recipe.epochs,
            "step": state.step,
            "total_steps": state.total_steps,
            "loss": float(loss.item()),
            "docs_per_second": round(rate, 1),
            "eta_seconds": round(eta),
        }
        self.log.info(
            "epoch %d/%d step %d/%d loss %.4f docs/s %.1f eta %s",
            state.epoch + 1,
            setup.recipe.epochs,
            state.step,
            state.total_steps,
            self.latest["loss"],
            rate,
            format_duration(eta),
        )
        if self.sink is not None:
            self.sink(self.latest)


class Cancel(Callback):
    """Stops the loop at the next step once ``reason()`` returns a reason (cancelled or shutdown)."""

    def __init__(self, reason: Callable[[], StopReason | None]) -> None:
        self.reason = reason

    def on_step_end(self, setup, state, loss):
        reason = self.reason()
        if reason:
            state.stop_reason = reason


class Checkpoint(Callback):
    """Saves model, optimizer, scheduler position, sampler position and RNG states.

    After each epoch, and when the loop stops mid-epoch (cancelled or shut
    down), so that a resumed run goes on at the next batch. A process killed
    outright resumes from its last epoch's checkpoint. With ``keep`` above 1, a copy of each
    epoch's checkpoint is kept next to it (``checkpoint-epoch-N``), the last ``keep`` epochs'.
    """

    def __init__(self, directory: Path, log: logging.Logger, keep: int = 1) -> None:
        self.directory, self.log, self.keep = directory, log, keep

    def on_epoch_end(self, setup, state):
        self._save(setup, state)
        self.log.info("checkpoint saved after epoch %d (step %d)", state.epoch, state.step)
        if self.keep > 1 and setup.world.is_main:
            self._keep_epoch(state.epoch)

    def _keep_epoch(self, epoch: int) -> None:
        import shutil

        copy = self.directory.with_name(f"{self.directory.name}-epoch-{epoch}")
        shutil.copytree(self.directory, copy, dirs_exist_ok=True)
        kept = sorted(
            self.directory.parent.glob(f"{self.directory.name}-epoch-*"), key=lambda p: int(p.name.rsplit("-", 1)[1])
        )
        for old in kept[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def on_train_end(self, setup, state):
        if state.batch_in_epoch:  # stopped mid-epoch
            self._save(setup, state)
            self.log.info(
                "checkpoint saved at batch %d of epoch %d (step %d)", state.batch_in_epoch, state.epoch + 1, state.step
            )

    def _save(self, setup: TrainSetup, state: TrainState) -> None:
        from tunerflow.training.checkpoint import save_checkpoint

        save_checkpoint(self.directory, setup, state)
