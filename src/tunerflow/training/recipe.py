"""A training recipe: every run option, declared once, validated once; defaults from ``config.yml``.

Each field below is the one declaration of a run option (see
:mod:`tunerflow.training.option_spec`): the request model of ``/runs/start``,
the client's pre-upload check and the CLI flags are derived from it. To add an
option, add a field here and its default to ``config.yml``'s ``recipe`` section.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tunerflow.data.sampler import check_m_per_class
from tunerflow.data.store import check_name
from tunerflow.errors import ConfigError
from tunerflow.evaluation.metrics import METRIC_NAMES, METRIC_PREFIX, metric_key
from tunerflow.format import MAX_OUTPUT_DIM
from tunerflow.options import (
    Distance,
    DropoutKernel,
    LinearKernel,
    MonitorMode,
    Pooling,
    Precision,
    PublishPolicy,
    Sampler,
    Scheduler,
    SchedulerStep,
)
from tunerflow.training.option_spec import Option, declared_options, option


def _best_metric(value: str) -> str:
    key = metric_key(value)
    if key.removeprefix(f"{METRIC_PREFIX}_") not in METRIC_NAMES:
        raise ConfigError(f"unknown best_metric {value!r}; choose one of: {', '.join(METRIC_NAMES)}")
    return key


LOSS_MONITORS = ("val_loss", "train_loss")


def _monitor(value: str) -> str:
    if value in LOSS_MONITORS:
        return value
    try:
        return _best_metric(value)
    except ConfigError:
        choices = ", ".join((*LOSS_MONITORS, *METRIC_NAMES))
        raise ConfigError(f"unknown monitor {value!r}; choose one of: {choices}") from None


def _run_name(value: str) -> str:
    return check_name(value, "run")


def _scheduler_options(value: dict) -> dict:
    from tunerflow.training.state import check_scheduler_options  # torch

    return check_scheduler_options(value)


# model_options (the reference tool's model construction options) that our models accept: the run option each sets.
MODEL_OPTIONS = {"pooling": "pooling", "pooler": "pooling", "max_length": "max_length", "max_seq_length": "max_length"}


def _model_options(value: dict) -> dict:
    unknown = sorted(set(value) - set(MODEL_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown model option(s) {', '.join(unknown)}; valid: {', '.join(MODEL_OPTIONS)} "
            "(they set the run options pooling and max_length)"
        )
    return value


def _device(value: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise ConfigError(f"unknown device {value!r}; use 'cpu', 'cuda' or 'cuda:N'")
    return value


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise ConfigError(f"rdzv_endpoint {value!r} is not host:port (e.g. tuner-0.tuner:29400)")
    return value


AUTO_DEVICES = 0  # devices: auto, every visible GPU


@dataclass(kw_only=True)
class Recipe:
    """What a run trains, on what, and how. See ``config.yml`` for why each default is what it is."""

    train_data: str = option("the stored dataset to train on", per_run=True, dataset=True)
    model: str = option(
        "model to fine-tune: a bundled name, a local Hugging Face or sentence-transformers directory, an artifact"
    )
    data_aware: bool = option(
        "choose the options this run leaves unset from the training data (max_length from text lengths, "
        "num_items_per_class from texts per label, a val_split for small data without evaluation); "
        "each choice and its reason go to the run's log and record; false: config.yml's values"
    )
    loss: str = option("a pytorch-metric-learning loss by class name, e.g. MultiSimilarityLoss, TripletMarginLoss")
    loss_options: dict[str, Any] = option(
        "the loss's constructor options; distance, reducer, regularizers by class name"
    )
    miner: str | None = option("a pytorch-metric-learning miner by class name; none: no miner")
    miner_options: dict[str, Any] = option("the miner's constructor options")
    optimizer: str = option("a torch.optim optimizer by class name, e.g. AdamW")
    optimizer_options: dict[str, Any] = option("the optimizer's options (the learning rate is learning_rate)")
    loss_optimizer: str | None = option(
        "a torch.optim optimizer by class name for the loss's own parameters (ArcFaceLoss, ProxyAnchorLoss, ...); "
        "null: they train with optimizer"
    )
    loss_optimizer_options: dict[str, Any] = option(
        "the loss optimizer's options; lr: its learning rate (default learning_rate), on the run's schedule"
    )
    learning_rate: float = option("peak learning rate (above 1 only diverges)", minimum=0, above=True, maximum=1)
    epochs: int = option(
        "passes over the training data (bounded: each epoch's batches are planned up front)",
        minimum=1,
        maximum=1000,
    )
    batch_size: int = option(
        "texts per optimizer step, at least 2 * num_items_per_class (bounded by memory)", minimum=4, maximum=65536
    )
    num_items_per_class: int = option("m: texts per label in each batch", minimum=2, maximum=1024)
    sampler: Sampler = option(
        "batches: class (num_items_per_class texts per label), hard (as class, each batch's labels the "
        "starting model's nearest to each other), random (labels ignored); auto: class"
    )
    probe: bool = option(
        "before training, the starting model retrieves labels held out of the training data; at average "
        "precision >= 0.95 (it already knows the domain) the run trains with NTXentLoss at 2e-5 (temperature "
        "0.05, no miner, num_items_per_class 2) instead; data_aware sets it for pair data of 10,000 texts or "
        "more that leaves loss, miner, learning_rate and num_items_per_class open; skipped in a launched "
        "(torchrun) run"
    )
    num_workers: int = option(
        "threads preparing the next batches while the model trains; 0: prepared in the loop", minimum=0, maximum=64
    )
    scheduler: Scheduler = option(
        "learning-rate schedule (transformers' names); all but constant and none warm up first"
    )
    scheduler_options: dict[str, Any] = option(
        "num_warmup_steps, num_training_steps, num_cycles, power, lr_end (as transformers' schedules)",
        check=_scheduler_options,
    )
    scheduler_step: SchedulerStep = option("what the schedule counts: optimizer steps (batch) or epochs")
    warmup_ratio: float = option(
        "share of the steps spent warming up the learning rate", minimum=0, maximum=1, below=True
    )
    max_length: int = option("tokens per text, at most the model's position embeddings", minimum=2, maximum=8192)
    forward_chunk: int | None = option(
        "texts per forward pass, sorted by length; null: the whole batch", minimum=1, maximum=65536
    )
    pooling: Pooling | None = option("token pooling; null: the model's own")
    model_options: dict[str, Any] = option(
        "the model's options, as the reference tool's: pooling (or pooler) and max_length (or max_seq_length), "
        "which set those run options",
        check=_model_options,
    )
    output_dim: int | None = option(
        "attach a linear projection head (no bias) from the pooled embedding to this many dimensions, trained "
        "with the run and saved in the artifact; null: the model's own dimension (and its head, if it has one)",
        minimum=1,
        maximum=MAX_OUTPUT_DIM,
    )
    freeze: bool = option(
        "train only the last layer: the projection head with output_dim (the backbone frozen), "
        "else the backbone's last transformer layer; frozen weights stay as they are and the optimizer never sees them"
    )
    max_grad_norm: float | None = option(
        "clip the gradient norm to this; null: no clipping", minimum=0, above=True, maximum=1000
    )
    seed: int = option(
        "seed of the batches, the initialisation and dropout (numpy seeds are below 2**32)",
        minimum=0,
        maximum=2**32 - 1,
    )
    device: str = option("where to train: cpu, cuda or cuda:N", check=_device)
    precision: Precision = option(
        "training precision: fp32, bf16, fp16 (CUDA), or auto (bf16 on a CPU with AMX bf16 tiles, else fp32)"
    )
    linear_kernel: LinearKernel = option(
        "float32 linear layers on the CPU: blas (torch's MKL), onednn, or auto (onednn on AMD x86 CPUs)"
    )
    dropout_kernel: DropoutKernel = option(
        "dropout masks when training on the CPU: bits (16-bit random words, ~3x cheaper), torch (bernoulli_), "
        "or auto (bits on the CPU, torch on a GPU)"
    )
    devices: int = option(
        "training processes on this machine, data-parallel: one per GPU with device cuda, gloo processes with "
        "device cpu; auto: every visible GPU",
        minimum=0,
        maximum=1024,
        named={"auto": AUTO_DEVICES},
    )
    nodes: int = option("machines training together (each runs devices processes)", minimum=1, maximum=1024)
    node_rank: int = option("this machine's place among the nodes, 0 for the tuner's", minimum=0, maximum=1023)
    rdzv_endpoint: str | None = option(
        "host:port of the c10d rendezvous the nodes meet at; null with one node (a local one)", check=_endpoint
    )
    model_artifact: str | None = option(
        "continue training a finished run's artifact (its run name) instead of model; null: model", check=_run_name
    )
    eval_data: str | None = option(
        "stored labelled dataset whose loss is val_loss after every epoch; null: none (see val_split)", dataset=True
    )
    val_split: float = option(
        "share of train_data's labels (whole labels) held out for val_loss when there is no eval_data",
        minimum=0,
        maximum=1,
        below=True,
    )
    eval_query_data: str | None = option("stored dataset of evaluation queries; null: no evaluation", dataset=True)
    eval_index_data: str | None = option(
        "stored dataset searched by the queries; null: the queries themselves", dataset=True
    )
    eval_limit: int = option("matches per query, the metrics' k (bounded: evaluation time)", minimum=1, maximum=10000)
    eval_batch_size: int = option("texts per forward pass when evaluating", minimum=1, maximum=65536)
    eval_exclude_self: bool = option("a query is not its own match (when it is also in the index)")
    eval_distance: Distance = option("how evaluation ranks the index: cosine, or (squared) euclidean on raw embeddings")
    best_metric: str = option(
        f"the primary metric, for the best epoch and early stopping: {', '.join(METRIC_NAMES)}", check=_best_metric
    )
    monitor: str | None = option(
        "what picks the best epoch and stops early: val_loss, train_loss or a metric; "
        "null: best_metric with eval_query_data, else val_loss",
        check=_monitor,
    )
    monitor_mode: MonitorMode = option("monitor improves upwards (max) or downwards (min); auto: min for losses")
    keep_best: bool = option("publish the best epoch, not the last (when there is a monitor)")
    early_stopping_patience: int | None = option(
        "stop after this many epochs without improvement; null: never", minimum=1, maximum=1000
    )
    early_stopping_min_delta: float = option(
        "the least change of monitor that counts as an improvement", minimum=0, maximum=1e6
    )
    early_stopping_baseline: float | None = option(
        "the value monitor must beat; null: its first epoch's", minimum=-1e9, maximum=1e9
    )
    keep_checkpoints: int = option(
        "epoch checkpoints kept in the run's directory (checkpoint-epoch-N); 1: only the latest",
        minimum=1,
        maximum=1000,
    )
    wiseft_alpha: float | None = option(
        "WiSE-FT after training: alpha * tuned + (1 - alpha) * starting weights; null: the tuned weights",
        minimum=0,
        maximum=1,
    )
    to_onnx: bool = option("also export the model to ONNX")
    int8: bool = option("also export an int8-quantised ONNX model (implies to_onnx)")
    publish: PublishPolicy = option(
        "when the artifact is served: if_better (after not below before on best_metric, or without it val_loss "
        "not above before; a run without either waits for /runs/promote), auto (always), manual (only by "
        "/runs/promote)"
    )
    run_name: str | None = option("the run's name; null: one is made up", default=None, per_run=True, check=_run_name)
    experiment_name: str = option(
        "a group of runs", default="default", per_run=True, check=lambda v: check_name(v, "experiment")
    )
    description: str = option("free text kept with the run", default="", per_run=True)

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        """The declared run options, in order."""
        return declared_options(cls)

    @classmethod
    def names(cls) -> list[str]:
        return [declared.name for declared in cls.options()]

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
        cls._check_max_length_once(overrides)
        merged = dict(defaults)
        merged.update({key: value for key, value in overrides.items() if value is not None or key not in merged})
        missing = [declared.name for declared in cls.options() if declared.required and declared.name not in merged]
        if missing:
            raise ConfigError(f"missing run option(s): {', '.join(missing)}")
        recipe = cls(**merged)
        recipe.validate()
        return recipe

    @staticmethod
    def _check_max_length_once(overrides: dict[str, Any]) -> None:
        """A run that gives max_length both itself and in model_options gives the same (config.yml's
        max_length is replaced by model_options' without a word)."""
        named, length = overrides.get("model_options"), overrides.get("max_length")
        if not isinstance(named, dict) or length is None:
            return
        for key in ("max_length", "max_seq_length"):
            if named.get(key) not in (None, length):
                raise ConfigError(f"max_length is {length} and model_options says {key} {named[key]}; give it once")

    def validate(self) -> None:
        """Check every value (types, bounds, choices, then the rules between options); raise ConfigError
        naming the option and what is allowed. Values are normalised in place (``3.0`` -> ``3``, enums)."""
        for declared in self.options():
            setattr(self, declared.name, declared.parse(getattr(self, declared.name)))
        self._apply_model_options()
        check_m_per_class(self.batch_size, self.num_items_per_class)
        if self.eval_index_data and not self.eval_query_data:
            raise ConfigError("eval_index_data needs eval_query_data (the queries)")
        self._check_monitor()
        self._check_world()
        from tunerflow.training.components import check_components  # torch and pytorch-metric-learning

        check_components(
            self.loss,
            self.loss_options,
            self.miner,
            self.miner_options,
            self.optimizer,
            self.optimizer_options,
            self.loss_optimizer,
            self.loss_optimizer_options,
        )
        self.to_onnx = self.to_onnx or self.int8

    @property
    def monitored(self) -> str:
        """The value that picks the best epoch and stops early: ``monitor``; by default ``best_metric`` with
        retrieval evaluation, else ``val_loss`` with validation data (the reference tool's default)."""
        if self.monitor:
            return self.monitor
        return "val_loss" if self.has_validation and not self.eval_query_data else self.best_metric

    @property
    def monitor_minimises(self) -> bool:
        if self.monitor_mode == MonitorMode.AUTO:
            return self.monitored in LOSS_MONITORS
        return self.monitor_mode == MonitorMode.MIN

    @property
    def has_validation(self) -> bool:
        """val_loss is computed after every epoch (eval_data or val_split)."""
        return bool(self.eval_data) or self.val_split > 0

    @property
    def selects(self) -> bool:
        """The monitored value exists after every epoch, so a best epoch is picked."""
        if self.monitored == "val_loss":
            return self.has_validation
        return self.monitored == "train_loss" or bool(self.eval_query_data)

    def _apply_model_options(self) -> None:
        """Set pooling and max_length from ``model_options``; a pooling given both ways must agree."""
        declared = {option.name: option for option in self.options()}
        chosen: dict[str, Any] = {}
        for name, value in self.model_options.items():
            target = MODEL_OPTIONS[name]
            try:
                parsed = declared[target].parse(value)
            except ConfigError as error:
                raise ConfigError(f"model_options {name}: {error}") from None
            if chosen.get(target, parsed) != parsed:
                raise ConfigError(f"model_options gives {target} twice, differently: {self.model_options}")
            chosen[target] = parsed
        if "pooling" in chosen and self.pooling not in (None, chosen["pooling"]):
            raise ConfigError(
                f"pooling is {self.pooling.value} and model_options says {chosen['pooling'].value}; give it once"
            )
        for target, value in chosen.items():
            setattr(self, target, value)

    def _check_monitor(self) -> None:
        if self.selects:
            return
        if self.monitored == "val_loss":
            needs = "monitor val_loss needs validation data: give eval_data or val_split > 0"
        else:
            needs = f"monitor {self.monitored} is a retrieval metric: give eval_query_data (and eval_index_data)"
        if self.early_stopping_patience:
            raise ConfigError(
                f"early_stopping_patience stops by evaluation: {needs}, or set early_stopping_patience: null"
            )
        if self.monitor:
            raise ConfigError(needs)

    def _check_world(self) -> None:
        if self.node_rank >= self.nodes:
            raise ConfigError(f"node_rank must be below nodes ({self.nodes}), got {self.node_rank}")
        if self.nodes > 1 and not self.rdzv_endpoint:
            raise ConfigError("nodes > 1 needs rdzv_endpoint (host:port of the rendezvous every node can reach)")
        if self.devices == AUTO_DEVICES and self.device == "cpu":
            raise ConfigError("devices auto counts GPUs: with device cpu give a number of processes")
        if self.devices != 1 and self.device.startswith("cuda:"):
            raise ConfigError(f"device {self.device} names one GPU; with devices {self.devices} use device cuda")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (enums as their names' strings), as stored in the run record."""
        return {
            key: value.value if isinstance(value, Enum) else value for key, value in dataclasses.asdict(self).items()
        }
