"""Request parameters of the TunerExecutor, shared with the client."""

from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import conint, validator

from tunerflow.serving.parameters import StrictParameters


class DatasetParameters(StrictParameters):
    """``/datasets/append``: which dataset the documents go to."""

    dataset: str


class RunParameters(StrictParameters):
    """``/runs/start``: a run's options; what is left out comes from the default recipe (config.yml)."""

    train_data: str
    model: Optional[str] = None
    eval_query_data: Optional[str] = None
    eval_index_data: Optional[str] = None
    loss: Optional[str] = None
    loss_options: Optional[Dict[str, Any]] = None
    miner: Optional[str] = None
    miner_options: Optional[Dict[str, Any]] = None
    optimizer: Optional[str] = None
    optimizer_options: Optional[Dict[str, Any]] = None
    learning_rate: Optional[float] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    num_items_per_class: Optional[int] = None
    scheduler: Optional[str] = None
    warmup_ratio: Optional[float] = None
    max_length: Optional[int] = None
    forward_chunk: Optional[int] = None
    pooling: Optional[str] = None
    max_grad_norm: Optional[float] = None
    seed: Optional[int] = None
    device: Optional[str] = None
    precision: Optional[str] = None
    eval_limit: Optional[int] = None
    best_metric: Optional[str] = None
    keep_best: Optional[bool] = None
    early_stopping_patience: Optional[int] = None
    to_onnx: Optional[bool] = None
    int8: Optional[bool] = None
    run_name: Optional[str] = None
    experiment_name: Optional[str] = None
    description: Optional[str] = None

    @validator("*", pre=True)
    def _whole_numbers(cls, value: Any, field) -> Any:  # noqa: N805
        # gRPC carries numbers as floats (3 arrives as 3.0); refuse 2.5 for an int option instead of truncating it.
        if field.type_ is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{field.name} must be a whole number, got {value}")
            return int(value)
        return value

    def options(self) -> dict[str, Any]:
        """The options that were given (None means: use the default)."""
        return {key: value for key, value in self.dict().items() if value is not None}


class RunQuery(StrictParameters):
    """``/runs/status``, ``/runs/metrics``, ``/runs/cancel``: which run."""

    run_name: str


class LogQuery(StrictParameters):
    """``/runs/logs``: a run's log from a byte offset (to follow it, pass back ``next_offset``)."""

    run_name: str
    offset: conint(ge=0) = 0


class ArtifactQuery(StrictParameters):
    """``/runs/artifact``: one chunk of the run's artifact zip, base64 in the answer."""

    run_name: str
    offset: conint(ge=0) = 0
    size: conint(ge=1, le=8 * 1024 * 1024) = 4 * 1024 * 1024
