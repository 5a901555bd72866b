"""The one owner of the best epoch: evaluation, keeping the best weights, early stopping.

The loop calls :meth:`Selection.after_epoch` once an epoch is done and before
any callback hears of it, so a callback (a checkpoint, a logger) always sees
the epoch's decisions, whatever the order of the callback list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunerflow.training.state import StopReason, TrainSetup, TrainState


class Selection:
    """Evaluates before fine-tuning (once per run) and after every epoch, and decides from the monitored value.

    After each epoch's evaluation it updates the best epoch, saves the best
    weights (with ``best_path``), counts the epochs without improvement and,
    after ``patience`` of them, stops the run early.

    Args:
        evaluate: returns the metrics of the model as it is now (retrieval metrics, ``val_loss``).
        metric: the monitored value: a key of those metrics, or ``train_loss`` (the epoch's mean loss).
        log: where the metrics and decisions are logged.
        best_path: where the best epoch's weights are kept (safetensors), or None not to keep them.
        patience: epochs without improvement before stopping, or None never to stop early.
        minimise: lower is better (a loss); default: higher is better (a metric).
        min_delta: the least change that counts as an improvement.
        baseline: the value to beat from the start; None: the first epoch sets the bar.
    """

    def __init__(
        self,
        evaluate: Callable[[], dict],
        metric: str,
        log: logging.Logger,
        best_path: Path | None = None,
        patience: int | None = None,
        *,
        minimise: bool = False,
        min_delta: float = 0.0,
        baseline: float | None = None,
    ) -> None:
        self.evaluate, self.metric, self.log = evaluate, metric, log
        self.best_path, self.patience = best_path, patience
        self.minimise, self.min_delta, self.baseline = minimise, min_delta, baseline

    def improves(self, value: float, best: float | None) -> bool:
        """``value`` beats ``best`` (or the baseline, before any best) by more than ``min_delta``."""
        bar = self.baseline if best is None else best
        if bar is None:
            return True
        return value < bar - self.min_delta if self.minimise else value > bar + self.min_delta

    def before(self, state: TrainState) -> None:
        """Evaluate the model before fine-tuning, unless a resumed run already did."""
        if not any(e["stage"] == "before" for e in state.evaluations):
            self._record(state, "before", 0)

    def after_epoch(self, setup: TrainSetup, state: TrainState) -> None:
        """Evaluate epoch ``state.epoch``; update the best epoch, its weights, the patience and the stop."""
        extra = {"train_loss": state.epoch_losses[-1]} if self.metric == "train_loss" else {}
        value = self._record(state, "epoch", state.epoch, extra)[self.metric]
        if self.improves(value, state.best_value):
            state.best_value, state.best_epoch, state.epochs_without_improvement = value, state.epoch, 0
            self.log.info("epoch %d is the best so far (%s=%.5f)", state.epoch, self.metric, value)
            if self.best_path is not None:
                _save_weights(setup.model, self.best_path)
        else:
            state.epochs_without_improvement += 1
        if self.patience and state.epochs_without_improvement >= self.patience and state.epoch < setup.recipe.epochs:
            state.stop_reason = StopReason.EARLY_STOPPING
            self.log.info("early stopping: %d epochs without improvement", state.epochs_without_improvement)

    def restore_best(self, model: torch.nn.Module, state: TrainState) -> bool:
        """Load the best epoch's weights into ``model`` when they are kept; returns whether it did."""
        if self.best_path is None or not self.best_path.is_file():
            return False
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(self.best_path)))
        self.log.info("keeping epoch %d (%s=%.5f)", state.best_epoch, self.metric, state.best_value)
        return True

    def after_averaging(self, state: TrainState) -> dict:
        """Evaluate the published model once more after its weights were averaged with the starting
        ones (WiSE-FT): the kept epoch's figures no longer describe it."""
        return self._record(state, "averaged", state.best_epoch or state.epoch)

    def _record(self, state: TrainState, stage: str, epoch: int, extra: dict | None = None) -> dict:
        started = time.monotonic()
        metrics = {**self.evaluate(), **(extra or {})}
        state.evaluations.append({"stage": stage, "epoch": epoch, "metrics": metrics})
        named = {"before": "before fine-tuning", "averaged": "of the WiSE-FT average"}
        label = named.get(stage, f"after epoch {epoch}")
        self.log.info(
            "evaluation %s (%.0f s): %s",
            label,
            time.monotonic() - started,
            " ".join(f"{name}={value:.5f}" for name, value in metrics.items()),
        )
        return metrics


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    save_file(weights, str(partial))
    partial.replace(path)
