"""Closed sets of options as ``str`` enums, parsed once with helpful errors."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from tunerflow.errors import ConfigError

E = TypeVar("E", bound=Enum)


class Pooling(str, Enum):
    """How token embeddings become one text embedding."""

    MEAN = "mean"
    CLS = "cls"
    MAX = "max"


class Backend(str, Enum):
    """Inference engines behind :class:`tunerflow.inference.base.InferenceBackend`.

    ``auto`` is no engine: it picks one of the others (and its precision) for the CPU and the artifact,
    see :func:`tunerflow.inference.auto.choose_backend`.
    """

    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"
    OPENVINO = "openvino"
    OPENVINO_INT8 = "openvino-int8"
    AUTO = "auto"

    @property
    def int8(self) -> bool:
        """Whether the backend runs the artifact's int8 ONNX graph (``model.int8.onnx``)."""
        return self in (Backend.ONNX_INT8, Backend.OPENVINO_INT8)

    @property
    def takes_dtype(self) -> bool:
        """Whether ``dtype`` sets this backend's compute precision (elsewhere the graph carries its own)."""
        return self in (Backend.TORCH, Backend.OPENVINO)


class DType(str, Enum):
    """Compute precision of the torch and openvino backends; ``auto``: bfloat16 where the CPU has native
    bf16 (AVX512-BF16 or AMX), else float32 (``tunerflow.inference.cpu.choose_dtype``)."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    AUTO = "auto"


def parse_enum(enum: type[E], value: object, what: str) -> E:
    """Return ``enum(value)`` or raise a ConfigError that lists the valid choices."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {choices}") from None


class Scheduler(str, Enum):
    """How the learning rate moves (see ``training.state.learning_rate_at``); the names of transformers'
    ``get_scheduler``, which the reference tool passes its ``scheduler`` to.

    Every schedule but ``constant`` and ``none`` warms up first (``warmup_ratio``, or
    ``scheduler_options.num_warmup_steps``); ``constant`` and ``none`` keep ``learning_rate`` throughout.
    """

    LINEAR = "linear"
    COSINE = "cosine"
    CONSTANT = "constant"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"
    NONE = "none"


class SchedulerStep(str, Enum):
    """What the learning-rate schedule counts: optimizer steps (``batch``) or epochs."""

    BATCH = "batch"
    EPOCH = "epoch"


class Sampler(str, Enum):
    """How batches are drawn: ``class`` (m texts per label), ``hard`` (as class, with labels the starting model
    confuses together), ``random`` (labels ignored), ``auto`` (class)."""

    AUTO = "auto"
    CLASS = "class"
    HARD = "hard"
    RANDOM = "random"


class MonitorMode(str, Enum):
    """Whether the monitored value improves up (``max``) or down (``min``); ``auto``: min for losses."""

    AUTO = "auto"
    MIN = "min"
    MAX = "max"


class Distance(str, Enum):
    """How evaluation ranks the index for a query."""

    COSINE = "cosine"
    EUCLIDEAN = "euclidean"
    SQEUCLIDEAN = "sqeuclidean"


class Precision(str, Enum):
    """Training precision: float32, or autocast to bfloat16 or float16 (fp16 needs CUDA); ``auto``: bf16 on a
    CPU with AMX bf16 tiles, else fp32 (``tunerflow.training.hardware.choose_precision``)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    AUTO = "auto"


class LinearKernel(str, Enum):
    """What multiplies float32 linear layers on the CPU: torch's BLAS (MKL in its CPU wheels) or oneDNN."""

    AUTO = "auto"  # oneDNN on AMD x86 CPUs, where MKL takes its slow path
    BLAS = "blas"
    ONEDNN = "onednn"


class DropoutKernel(str, Enum):
    """What draws dropout masks while training on the CPU: torch's ``bernoulli_``, or 16-bit random words."""

    AUTO = "auto"  # bits on the CPU, torch's on a GPU
    TORCH = "torch"
    BITS = "bits"


class PublishPolicy(str, Enum):
    """When a finished run's artifact is served (``artifacts/LATEST`` rewritten).

    ``if_better``: when its after-metrics on the run's evaluation set are not below
    the before-metrics on ``best_metric`` (a run without evaluation is not served;
    promote it by hand). ``auto``: always. ``manual``: never; promote it by hand.
    """

    AUTO = "auto"
    IF_BETTER = "if_better"
    MANUAL = "manual"
