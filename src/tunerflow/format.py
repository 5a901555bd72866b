"""The artifact format, the bottom layer: file names, ONNX names, the model spec and a typed config.

Every core package builds on this module and it builds on none of them (only
on ``options`` and ``errors``): modeling reads the spec and the architecture
limits, artifact writes and verifies the config, export names the graph's
inputs and output, inference opens what they describe. It imports neither
torch nor transformers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tunerflow.errors import ConfigError
from tunerflow.options import Backend, DType, Pooling, parse_enum

ARTIFACT_CONFIG = "tunerflow.json"  # also what marks a directory as an artifact
RUN_FILE = "run.json"
HF_CONFIG = "config.json"
WEIGHTS_FILE = "model.safetensors"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
HEAD_DIR = "2_Dense"  # the projection head, as sentence-transformers' Dense module (bias-free, no activation)
HEAD_FILE = f"{HEAD_DIR}/model.safetensors"
HEAD_WEIGHT = "linear.weight"  # its one tensor, (dimension, hidden size), under Dense's own key
MAX_OUTPUT_DIM = 8192
FORMAT_NAME = "tunerflow-artifact"
FORMAT_VERSION = 1

ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUT = "embedding"

DEFAULT_MAX_POSITIONS = 512  # for configs that do not say (every BERT-like model of that size)
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@dataclass(frozen=True)
class Architecture:
    """What a backbone's ``config.json`` allows.

    Attributes:
        model_type: the Hugging Face model type (``bert``, ...).
        max_positions: ``max_position_embeddings``, the longest input the weights can embed.
        causal: a decoder whose tokens see only the tokens before them.
    """

    model_type: str
    max_positions: int
    causal: bool = False

    @classmethod
    def from_hf_config(cls, config: dict) -> Architecture:
        """From a Hugging Face config as a dict (``config.json``, or ``PretrainedConfig.to_dict()``)."""
        architectures = config.get("architectures") or ()
        return cls(
            model_type=str(config.get("model_type", "")),
            max_positions=int(config.get("max_position_embeddings") or DEFAULT_MAX_POSITIONS),
            causal=bool(config.get("is_decoder")) or any(str(a).endswith(_CAUSAL_SUFFIXES) for a in architectures),
        )

    @classmethod
    def read(cls, directory: Path) -> Architecture:
        """From ``<directory>/config.json``."""
        return cls.from_hf_config(json.loads((Path(directory) / HF_CONFIG).read_text()))


@dataclass(frozen=True)
class ModelSpec:
    """What a consumer must know to reproduce a model's embeddings.

    Attributes:
        base_model: the name or path the weights first came from.
        pooling: how token embeddings are pooled.
        normalize: whether embeddings are L2-normalised after pooling.
        max_length: longest input in tokens; longer texts are truncated.
        dimension: size of one embedding.
    """

    base_model: str
    pooling: Pooling
    normalize: bool
    max_length: int
    dimension: int

    def check(self, architecture: Architecture) -> ModelSpec:
        """Return self, or raise ConfigError if the model cannot honour this spec.

        The one place for checks that need the model: every loader and every
        inference backend (torch, ONNX, int8) calls it.
        """
        limit = architecture.max_positions
        if not 2 <= self.max_length <= limit:
            raise ConfigError(f"max_length must be between 2 and {limit} for this model, got {self.max_length}")
        if self.pooling is Pooling.CLS and architecture.causal:
            raise ConfigError(
                f"cls pooling takes the first token, which in a causal {architecture.model_type or 'decoder'} "
                "model sees no other token; use mean or max pooling"
            )
        return self

    def override(
        self,
        architecture: Architecture,
        *,
        pooling: str | Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
    ) -> ModelSpec:
        """This spec with the given settings replaced (None keeps one), checked against ``architecture``."""
        changes: dict = {}
        if pooling is not None:
            changes["pooling"] = parse_enum(Pooling, pooling, "pooling")
        if normalize is not None:
            changes["normalize"] = bool(normalize)
        if max_length is not None:
            changes["max_length"] = int(max_length)
        return replace(self, **changes).check(architecture)

    def to_dict(self) -> dict:
        return {**asdict(self), "pooling": self.pooling.value}

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(
            base_model=str(data["base_model"]),
            pooling=parse_enum(Pooling, data["pooling"], "pooling"),
            normalize=bool(data["normalize"]),
            max_length=int(data["max_length"]),
            dimension=int(data["dimension"]),
        )


@dataclass(frozen=True)
class OnnxInfo:
    """What the artifact records about ``model.onnx`` (pooled, not normalised)."""

    file: str
    opset: int
    parity_max_abs_diff: float
    parity_tolerance: float
    inputs: list[str] = field(default_factory=lambda: list(ONNX_INPUTS))
    output: str = ONNX_OUTPUT
    normalized: bool = False

    def to_dict(self) -> dict:
        keys = ("file", "opset", "inputs", "output", "normalized", "parity_max_abs_diff", "parity_tolerance")
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def from_dict(cls, data: dict) -> OnnxInfo:
        return cls(**{**data, "inputs": list(data.get("inputs", ONNX_INPUTS))})


@dataclass(frozen=True)
class Int8Info:
    """What the artifact records about ``model.int8.onnx``: its cosine to fp32 on probe texts."""

    file: str
    method: str
    probe_size: int
    cosine_to_fp32_mean: float
    cosine_to_fp32_min: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Int8Info:
        return cls(**data)


def precision_path(backend: Backend, dtype: DType = DType.FLOAT32) -> str:
    """A backend and precision as one name: ``torch/bfloat16``, ``onnx-int8``; the key of a precision check.

    The backends that take a ``dtype`` (torch, openvino) name it; the others' graphs carry their own.
    """
    return f"{backend.value}/{dtype.value}" if backend.takes_dtype else backend.value


@dataclass(frozen=True)
class PrecisionCheck:
    """A lower-precision path's quality against fp32 torch, measured when the artifact was published.

    The path qualifies when ``value >= fp32 - bound``: with ``metric`` ``model_reciprocal_rank`` (MRR on the
    run's evaluation set, subsampled) the bound is the largest MRR drop allowed; with ``cosine_to_fp32_mean``
    (the proxy for a run without an evaluation set: mean cosine to fp32 on probe texts) ``fp32`` is 1.

    Attributes:
        metric: what was compared (``model_reciprocal_rank`` or ``cosine_to_fp32_mean``).
        fp32: fp32 torch's value of ``metric``.
        value: this path's value.
        delta: ``value - fp32``.
        texts: texts embedded by each path (queries and index, or probe texts).
        bound: the largest drop below ``fp32`` allowed.
        qualifies: whether the drop is within ``bound``.
    """

    metric: str
    fp32: float
    value: float
    delta: float
    texts: int
    bound: float
    qualifies: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PrecisionCheck:
        return cls(
            metric=str(data["metric"]),
            fp32=float(data["fp32"]),
            value=float(data["value"]),
            delta=float(data["delta"]),
            texts=int(data["texts"]),
            bound=float(data["bound"]),
            qualifies=bool(data["qualifies"]),
        )


@dataclass(frozen=True)
class HeadInfo:
    """What the artifact records about its projection head (the run's ``output_dim``).

    A linear map without bias from the pooled embedding (``in_features``, the
    backbone's hidden size) to ``out_features`` (the spec's dimension), applied
    before normalisation; its weight is ``file``'s tensor :data:`HEAD_WEIGHT`.
    """

    file: str
    in_features: int
    out_features: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadInfo:
        return cls(file=str(data["file"]), in_features=int(data["in_features"]), out_features=int(data["out_features"]))


@dataclass(frozen=True)
class ArtifactConfig:
    """``tunerflow.json``: the artifact's description of itself.

    Attributes:
        spec: the model spec.
        created_at: ISO time of writing.
        versions: versions of the libraries that wrote it.
        onnx: the ONNX export, when there is one.
        onnx_int8: the int8 quantisation, when there is one.
        head: the projection head after pooling, when the run had ``output_dim``.
        files: size and SHA-256 of every other file, by relative path.
        precision_checks: each lower-precision path's quality against fp32, by path (``torch/bfloat16``,
            ``onnx-int8``, ``openvino-int8``, ``openvino/bfloat16``: :func:`precision_path`), as measured at
            publication; empty when nothing was measured (an artifact saved outside a run, or written before
            these records existed).
    """

    spec: ModelSpec
    created_at: str
    versions: dict[str, str]
    onnx: OnnxInfo | None = None
    onnx_int8: Int8Info | None = None
    files: dict[str, dict] = field(default_factory=dict)
    head: HeadInfo | None = None
    precision_checks: dict[str, PrecisionCheck] = field(default_factory=dict)

    def onnx_file(self, int8: bool) -> str | None:
        """The file name of the fp32 (or int8) graph, or None when the artifact has none."""
        info = self.onnx_int8 if int8 else self.onnx
        return info.file if info else None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "spec": self.spec.to_dict(),
            "versions": dict(self.versions),
            "onnx": self.onnx.to_dict() if self.onnx else None,
            "onnx_int8": self.onnx_int8.to_dict() if self.onnx_int8 else None,
            "head": self.head.to_dict() if self.head else None,
            "precision_checks": {path: check.to_dict() for path, check in self.precision_checks.items()},
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ArtifactConfig:
        """Parse and validate; raises ValueError, KeyError, TypeError or ConfigError on a bad config."""
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f"format is {data.get('format')!r}, not {FORMAT_NAME!r}")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"format version {data['format_version']} is newer than this tunerflow reads")
        files = data["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError("the file list is empty")
        return cls(
            spec=ModelSpec.from_dict(data["spec"]),
            created_at=str(data.get("created_at", "")),
            versions=dict(data.get("versions") or {}),
            onnx=OnnxInfo.from_dict(data["onnx"]) if data.get("onnx") else None,
            onnx_int8=Int8Info.from_dict(data["onnx_int8"]) if data.get("onnx_int8") else None,
            files=files,
            head=HeadInfo.from_dict(data["head"]) if data.get("head") else None,
            precision_checks={  # absent in artifacts written before the records existed
                str(path): PrecisionCheck.from_dict(check)
                for path, check in (data.get("precision_checks") or {}).items()
            },
        )
