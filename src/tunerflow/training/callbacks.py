"""Side concerns of the loop as callbacks: progress, evaluation, best model, early stopping, checkpoints.

Hooks are no-ops unless overridden. They run in list order; on an epoch's end
evaluation comes first, so the best-model and early-stopping callbacks see
its result, and the checkpoint comes last, so it saves their decisions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunerflow.training.state import TrainSetup, TrainState


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
    out). ``loss.item()`` is a device sync point, so it is read only when a line
    is written. The latest values are kept in :attr:`latest` for status queries.
    """

    def __init__(self, log: logging.Logger, every_seconds: float = 10.0) -> None:
        self.log, self.every_seconds = log, every_seconds
        self.latest: dict = {}
        self._mark = self._last = 0.0
        self._train_seconds = 0.0
        self._steps = 0
        self._docs = 0

    def on_train_begin(self, setup, state):
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
        self._mark = time.monotonic()
        self._last = self._last or self._mark

    def on_step_end(self, setup, state, loss):
        now = time.monotonic()
        self._train_seconds += now - self._mark
        self._mark = now
        self._steps += 1
        self._docs += setup.recipe.batch_size
        if now - self._last < self.every_seconds and state.step != state.total_steps:
            return
        self._last = now
        rate = self._docs / self._train_seconds if self._train_seconds else 0.0
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


class Evaluation(Callback):
    """Evaluates before fine-tuning (once per run) and after every epoch, and tracks the best epoch.

    Args:
        evaluate: returns the metrics of the model as it is now.
        metric: the primary metric (higher is better): the best epoch and epochs without improvement.
        log: where the metrics are logged.
    """

    def __init__(self, evaluate: Callable[[], dict], metric: str, log: logging.Logger) -> None:
        self.evaluate, self.metric, self.log = evaluate, metric, log

    def on_train_begin(self, setup, state):
        if not any(e["stage"] == "before" for e in state.evaluations):
            self._record(state, "before", 0)

    def on_epoch_end(self, setup, state):
        value = self._record(state, "epoch", state.epoch)[self.metric]
        if state.best_value is None or value > state.best_value:
            state.best_value, state.best_epoch, state.epochs_without_improvement = value, state.epoch, 0
            self.log.info("epoch %d is the best so far (%s=%.5f)", state.epoch, self.metric, value)
        else:
            state.epochs_without_improvement += 1

    def _record(self, state: TrainState, stage: str, epoch: int) -> dict:
        started = time.monotonic()
        metrics = self.evaluate()
        state.evaluations.append({"stage": stage, "epoch": epoch, "metrics": metrics})
        label = "before fine-tuning" if stage == "before" else f"after epoch {epoch}"
        self.log.info(
            "evaluation %s (%.0f s): %s",
            label,
            time.monotonic() - started,
            " ".join(f"{name}={value:.5f}" for name, value in metrics.items()),
        )
        return metrics


class KeepBest(Callback):
    """Saves the weights of the best epoch (as :class:`Evaluation` found it) to ``path`` (safetensors)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, setup, state):
        if state.best_epoch == state.epoch:
            from safetensors.torch import save_file

            weights = {k: v.detach().cpu().contiguous() for k, v in setup.model.state_dict().items()}
            partial = self.path.with_name(f".{self.path.name}.partial")
            save_file(weights, str(partial))
            partial.replace(self.path)


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without improvement of the primary metric (needs :class:`Evaluation`)."""

    def __init__(self, patience: int, log: logging.Logger) -> None:
        self.patience, self.log = patience, log

    def on_epoch_end(self, setup, state):
        if state.epochs_without_improvement >= self.patience and state.epoch < setup.recipe.epochs:
            state.stop_reason = "early stopping"
            self.log.info("early stopping: %d epochs without improvement", state.epochs_without_improvement)


class Cancel(Callback):
    """Stops the loop at the next step once ``reason()`` returns a reason (``cancelled``, ``shutdown``)."""

    def __init__(self, reason: Callable[[], str | None]) -> None:
        self.reason = reason

    def on_step_end(self, setup, state, loss):
        reason = self.reason()
        if reason:
            state.stop_reason = reason


class Checkpoint(Callback):
    """Saves model, optimizer, scheduler position, sampler position and RNG states after each epoch."""

    def __init__(self, directory: Path, log: logging.Logger) -> None:
        self.directory, self.log = directory, log

    def on_epoch_end(self, setup, state):
        from tunerflow.training.checkpoint import save_checkpoint

        save_checkpoint(self.directory, setup, state)
        self.log.info("checkpoint saved after epoch %d (step %d)", state.epoch, state.step)
