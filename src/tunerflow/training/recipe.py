"""A training recipe: every option of a run, validated once, defaults from ``config.yml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from tunerflow.data.store import check_name
from tunerflow.errors import ConfigError
from tunerflow.evaluation.metrics import METRIC_NAMES
from tunerflow.options import Pooling, parse_enum

PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULERS = ("linear", "cosine", "constant")


@dataclass
class Recipe:
    """What a run trains, on what, and how. See ``config.yml`` for why each default is what it is."""

    train_data: str
    model: str
    loss: str
    loss_options: dict[str, Any]
    miner: str | None
    miner_options: dict[str, Any]
    optimizer: str
    optimizer_options: dict[str, Any]
    learning_rate: float
    epochs: int
    batch_size: int
    num_items_per_class: int
    scheduler: str
    warmup_ratio: float
    max_length: int
    forward_chunk: int | None
    pooling: str | None
    max_grad_norm: float | None
    seed: int
    device: str
    precision: str
    eval_query_data: str | None
    eval_index_data: str | None
    eval_limit: int
    best_metric: str
    keep_best: bool  # applies when evaluation is on
    early_stopping_patience: int | None
    to_onnx: bool
    int8: bool
    run_name: str | None = None
    experiment_name: str = "default"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]

    @classmethod
    def check_names(cls, options: dict[str, Any]) -> None:
        """Raise ConfigError listing the valid names if ``options`` has a key that is not one."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise ConfigError(f"unknown run option(s) {', '.join(unknown)}; valid: {', '.join(cls.names())}")

    @classmethod
    def from_options(cls, defaults: dict[str, Any], overrides: dict[str, Any]) -> Recipe:
        """Merge ``overrides`` over ``defaults`` (None in overrides keeps a default), then validate."""
        cls.check_names(defaults)
        cls.check_names(overrides)
        merged = dict(defaults)
        merged.update({key: value for key, value in overrides.items() if value is not None or key not in merged})
        missing = [name for name in cls.names() if name not in merged and _required(name)]
        if missing:
            raise ConfigError(f"missing run option(s): {', '.join(missing)}")
        recipe = cls(**{key: merged[key] for key in cls.names() if key in merged})
        recipe.validate()
        return recipe

    def validate(self) -> None:
        """Check every value; raise ConfigError naming the option and what is allowed."""
        check_name(self.train_data, "train_data dataset")
        for name in ("eval_query_data", "eval_index_data"):
            if getattr(self, name) is not None:
                check_name(getattr(self, name), f"{name} dataset")
        if self.eval_index_data and not self.eval_query_data:
            raise ConfigError("eval_index_data needs eval_query_data (the queries)")
        if self.run_name is not None:
            check_name(self.run_name, "run")
        check_name(self.experiment_name, "experiment")
        self.learning_rate = _number(self.learning_rate, "learning_rate", float)
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        self.epochs = _number(self.epochs, "epochs", int)
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        self.batch_size = _number(self.batch_size, "batch_size", int)
        self.num_items_per_class = _number(self.num_items_per_class, "num_items_per_class", int)
        if self.num_items_per_class < 2:
            raise ConfigError(f"num_items_per_class must be at least 2, got {self.num_items_per_class}")
        if self.batch_size < 2 * self.num_items_per_class:
            raise ConfigError(
                f"batch_size {self.batch_size} is too small for num_items_per_class {self.num_items_per_class}: "
                f"a batch needs at least two labels, so batch_size >= {2 * self.num_items_per_class}"
            )
        if self.forward_chunk is not None:
            self.forward_chunk = _number(self.forward_chunk, "forward_chunk", int)
            if self.forward_chunk < 1:
                raise ConfigError(f"forward_chunk must be at least 1 or null, got {self.forward_chunk}")
        self.max_length = _number(self.max_length, "max_length", int)
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {self.max_length}")
        self.warmup_ratio = _number(self.warmup_ratio, "warmup_ratio", float)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm is not None:
            self.max_grad_norm = _number(self.max_grad_norm, "max_grad_norm", float)
            if self.max_grad_norm <= 0:
                raise ConfigError(f"max_grad_norm must be > 0 or null, got {self.max_grad_norm}")
        self.seed = _number(self.seed, "seed", int)
        self.eval_limit = _number(self.eval_limit, "eval_limit", int)
        if self.eval_limit < 1:
            raise ConfigError(f"eval_limit must be at least 1, got {self.eval_limit}")
        if self.early_stopping_patience is not None:
            self.early_stopping_patience = _number(self.early_stopping_patience, "early_stopping_patience", int)
            if self.early_stopping_patience < 1:
                raise ConfigError(
                    f"early_stopping_patience must be at least 1 or null, got {self.early_stopping_patience}"
                )
        _choice(self.precision, PRECISIONS, "precision")
        _choice(self.scheduler, SCHEDULERS, "scheduler")
        if self.pooling is not None:
            self.pooling = parse_enum(Pooling, self.pooling, "pooling").value
        metric = self.best_metric.removeprefix("model_")
        if metric not in METRIC_NAMES:
            raise ConfigError(f"unknown best_metric {self.best_metric!r}; choose one of: {', '.join(METRIC_NAMES)}")
        self.best_metric = f"model_{metric}"
        if self.early_stopping_patience and not self.eval_query_data:
            raise ConfigError(
                "early_stopping_patience stops by evaluation: give eval_query_data (and eval_index_data), "
                "or set early_stopping_patience: null"
            )
        for name in ("loss_options", "miner_options", "optimizer_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a mapping of option names to values")
        self.int8 = bool(self.int8)
        self.to_onnx = bool(self.to_onnx) or self.int8

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("extra")
        return data


def _required(name: str) -> bool:
    return name not in ("run_name", "experiment_name", "description")


def _number(value: Any, name: str, kind: type) -> Any:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if kind is int and float(value) != number:
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return number


def _choice(value: Any, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
