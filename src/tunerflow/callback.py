"""The reference tool's callbacks, by its names and arguments; each one becomes run options.

A callback here does not run in your process: ``fit`` turns it into the run options it
stands for (:meth:`options`), checked before anything is uploaded like any other option, and the
tuner does the work. Where two callbacks would decide the same thing (``BestModelCheckpoint`` and
``EarlyStopping`` both watch a ``monitor``), they must agree: one monitor picks the best epoch
and stops early.

==========================  ==========================================================
callback                    run options
==========================  ==========================================================
EvaluationCallback          eval_query_data, eval_index_data, eval_limit, eval_batch_size,
                            eval_exclude_self, eval_distance
BestModelCheckpoint         keep_best: true, monitor, monitor_mode
EarlyStopping               early_stopping_patience, early_stopping_min_delta,
                            early_stopping_baseline, monitor, monitor_mode
TrainingCheckpoint          keep_checkpoints
WiSEFTCallback              wiseft_alpha
WandBLogger                 refused: wandb is not installed (see its docstring)
==========================  ==========================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from tunerflow.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class EvaluationCallback:
    """Evaluate retrieval before fine-tuning and after every epoch (the metrics of ``run.metrics()``).

    Args:
        query_data: the queries: a DocList, ``(text, label)`` pairs, a CSV or JSONL path, or a stored dataset.
        index_data: the documents searched; None: the queries are their own index.
        batch_size: texts per forward pass when embedding them (``eval_batch_size``).
        exclude_self: a query is not counted as its own match (``eval_exclude_self``).
        limit: matches per query, the metrics' k (``eval_limit``); None: config.yml's.
        distance: ``cosine``, ``euclidean`` or ``sqeuclidean`` (``eval_distance``).
        num_workers: accepted for the reference tool's scripts; matching is one matrix product
            here, so it is not used (fit logs that).
    """

    query_data: Any
    index_data: Any = None
    batch_size: int = 32
    exclude_self: bool = True
    limit: int | None = 20
    distance: str = "cosine"
    num_workers: int | None = None

    def options(self) -> dict[str, Any]:
        if self.num_workers is not None:
            log.warning("EvaluationCallback(num_workers=%s) is not used: matching is one matrix product", self.num_workers)
        options = {
            "eval_batch_size": self.batch_size,
            "eval_exclude_self": self.exclude_self,
            "eval_distance": self.distance,
            "eval_limit": self.limit,
        }
        return {key: value for key, value in options.items() if value is not None}  # None: config.yml's


@dataclass
class BestModelCheckpoint:
    """Publish the best epoch by ``monitor`` rather than the last.

    Args:
        monitor: ``val_loss`` (needs eval_data or val_split), ``train_loss`` or a retrieval metric
            (needs an EvaluationCallback), e.g. ``average_precision``.
        mode: ``auto`` (min for losses, max for metrics), ``min`` or ``max``.
    """

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"

    def options(self) -> dict[str, Any]:
        return {"keep_best": True, "monitor": self.monitor, "monitor_mode": _mode(self.monitor, self.mode)}


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor, mode: as :class:`BestModelCheckpoint`'s.
        patience: epochs without improvement before stopping.
        min_delta: the least change that counts as an improvement.
        baseline: the value to beat from the first epoch on; None: the first epoch sets the bar.
    """

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = 2
    min_delta: float = 0
    baseline: float | None = None

    def options(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "monitor_mode": _mode(self.monitor, self.mode),
            "early_stopping_patience": self.patience,
            "early_stopping_min_delta": self.min_delta,
            "early_stopping_baseline": self.baseline,
        }


@dataclass
class TrainingCheckpoint:
    """Keep the checkpoints of the last ``last_k_epochs`` epochs in the run's directory on the tuner."""

    last_k_epochs: int = 1

    def options(self) -> dict[str, Any]:
        return {"keep_checkpoints": self.last_k_epochs}


@dataclass
class WiSEFTCallback:
    """WiSE-FT after training: the published weights are ``alpha * tuned + (1 - alpha) * starting``.

    alpha 0 gives the starting model back, 1 the fine-tuned one.
    """

    alpha: float = 0.4

    def options(self) -> dict[str, Any]:
        return {"wiseft_alpha": self.alpha}


def _mode(monitor: str, mode: str) -> str:
    """``auto`` made explicit (min for a loss, max for a metric), so that two callbacks' modes compare."""
    if mode != "auto":
        return mode
    return "min" if monitor in ("val_loss", "train_loss", "loss") else "max"


class WandBLogger:
    """The reference tool's Weights & Biases logger: not available.

    wandb is not among tunerflow's dependencies and its offline mode still needs the wandb
    package; constructing this raises ConfigError. The metrics it would log are in
    ``run.metrics()`` and the run's ``training.png``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ConfigError(
            "WandBLogger is not available: wandb is not installed with tunerflow (its offline mode needs it too); "
            "leave it out, and read the metrics with run.metrics() or the artifact's training.png"
        )


CALLBACKS = (EvaluationCallback, BestModelCheckpoint, EarlyStopping, TrainingCheckpoint, WiSEFTCallback)


def callback_options(callbacks: list) -> dict[str, Any]:
    """The run options of ``callbacks``; ConfigError for an unknown callback, a second one of a kind,
    or two that disagree on the monitor."""
    options: dict[str, Any] = {}
    seen: set[type] = set()
    for callback in callbacks:
        if not isinstance(callback, CALLBACKS):
            names = ", ".join(kind.__name__ for kind in CALLBACKS)
            raise ConfigError(f"unsupported callback {callback!r}; use one of: {names}")
        if type(callback) in seen:
            raise ConfigError(f"{type(callback).__name__} is given twice; a run takes one of each")
        seen.add(type(callback))
        for key, value in callback.options().items():
            if key in ("monitor", "monitor_mode") and key in options and options[key] != value:
                raise ConfigError(
                    f"BestModelCheckpoint and EarlyStopping disagree on {key.replace('monitor_', '')} "
                    f"({options[key]!r} and {value!r}): one monitor picks the best epoch and stops early"
                )
            options[key] = value
    return options


__all__ = [
    "BestModelCheckpoint",
    "EarlyStopping",
    "EvaluationCallback",
    "TrainingCheckpoint",
    "WandBLogger",
    "WiSEFTCallback",
    "callback_options",
]
