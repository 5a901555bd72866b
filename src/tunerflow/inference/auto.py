"""``backend: auto``: the fastest backend and precision that runs here and keeps the artifact's quality.

The recorded speed rankings live here, once: for each kind of CPU, the candidate paths (backend, dtype)
fastest first by measured throughput against sentence-transformers, each with the bench/RESULTS.md table
it comes from. :func:`choose_backend` walks the ranking of this CPU's kind and takes the first path that

* can run: its graph is in the artifact (``model.onnx``, ``model.int8.onnx``: auto never exports ONNX at
  start-up), OpenVINO imports for the openvino paths, the CPU computes bf16 natively for a bf16 path, and
  on a GPU only the torch paths are considered;
* keeps the quality: an fp32 path always does; a lower-precision one (bf16, int8) only with a precision
  check recorded at publication that qualifies (:class:`~tunerflow.format.PrecisionCheck`; bounds: MRR
  within 0.001 for bf16, 0.005 for int8). A path without a record does not qualify, so a hub model or
  the bundled one gets the fastest fp32 path it has.

The choice is a pure function of the CPU's flags, the artifact's config and what this process can run:
the same inputs give the same choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunerflow.errors import ConfigError
from tunerflow.format import ONNX_FILE, ONNX_INT8_FILE, ArtifactConfig, ModelSpec, precision_path
from tunerflow.inference.cpu import CpuFeatures
from tunerflow.options import Backend, DType

IN_PROCESS = "bench/RESULTS.md, Encoding, In-process"
OPENVINO_DIRECTION = "bench/RESULTS.md, OpenVINO backends (indicative only)"


@dataclass(frozen=True)
class Candidate:
    """One path of a ranking.

    Attributes:
        backend: the engine.
        dtype: its precision (float32 for the graphs that carry their own).
        ratio: measured throughput over sentence-transformers' on the same CPU kind; None: not measured
            (the order is what counts).
        source: the bench/RESULTS.md table the figure comes from.
    """

    backend: Backend
    dtype: DType = DType.FLOAT32
    ratio: float | None = None
    source: str = "not measured"

    @property
    def path(self) -> str:
        """The path's name, as precision checks are keyed: ``torch/bfloat16``, ``onnx-int8``."""
        return precision_path(self.backend, self.dtype)

    @property
    def lower_precision(self) -> bool:
        """bf16 or int8: it serves only with a qualifying precision check."""
        return self.backend.int8 or self.dtype is DType.BFLOAT16


@dataclass(frozen=True)
class Ranking:
    """The candidates of a CPU kind, fastest first, and where the order comes from."""

    candidates: tuple[Candidate, ...]
    note: str


T, OV, ONNX = Backend.TORCH, Backend.OPENVINO, Backend.ONNX
BF16 = DType.BFLOAT16

# AMD EPYC, 2 cores, AVX2 + FMA only (bench/RESULTS.md, machine of every CPU figure). openvino's figures
# are its indicative ratios to onnx on that machine times onnx's: fp32 1.05 x 1.64, int8 0.75 x 2.23.
# bf16 is emulated there (torch 0.20); openvino refuses bf16 without native bf16, so it is not listed.
AVX2 = Ranking(
    (
        Candidate(Backend.ONNX_INT8, ratio=2.23, source=IN_PROCESS),
        Candidate(OV, ratio=1.72, source=f"{OPENVINO_DIRECTION}: 1.05x onnx fp32"),
        Candidate(Backend.OPENVINO_INT8, ratio=1.67, source=f"{OPENVINO_DIRECTION}: 0.75x onnx-int8"),
        Candidate(ONNX, ratio=1.64, source=IN_PROCESS),
        Candidate(T, ratio=1.46, source=IN_PROCESS),
        Candidate(T, BF16, ratio=0.20, source=f"{IN_PROCESS} (emulated bf16)"),
    ),
    "measured on an AVX2 CPU (bench/RESULTS.md)",
)

# Xeon with AMX (amx_bf16, amx_int8, avx512_bf16), 2 cores: in-process ratios of `bench/encode.py --texts 3000
# --batch-size 0` (the encoder's batching) and, for the paths that run took no figure of, of its batch-32
# run the same day (bench/RESULTS.md, "On a CPU with AMX"). Served over gRPC at 512 and 128 documents per
# request the order of the paths measured there is the same. openvino-int8 runs ONNX Runtime's dynamically
# quantised graph, which OpenVINO runs slower than its own fp32.
AMX_TABLE = "bench/RESULTS.md, On a CPU with AMX, in-process"
AMX = Ranking(
    (
        Candidate(OV, BF16, ratio=4.36, source=AMX_TABLE),
        Candidate(Backend.ONNX_INT8, ratio=3.38, source=AMX_TABLE),
        Candidate(T, BF16, ratio=2.27, source=AMX_TABLE),
        Candidate(ONNX, ratio=1.45, source=f"{AMX_TABLE} (batch 32)"),
        Candidate(OV, ratio=1.43, source=f"{AMX_TABLE} (batch 32)"),
        Candidate(T, ratio=1.36, source=AMX_TABLE),
        Candidate(Backend.OPENVINO_INT8, ratio=0.81, source=f"{AMX_TABLE} (batch 32)"),
    ),
    "measured on a Xeon with AMX (bench/RESULTS.md)",
)

# On a GPU only torch is considered; bf16 first as tensor cores run it faster (not measured: bench/gpu.sh).
CUDA = Ranking((Candidate(T, BF16), Candidate(T)), "GPU order, not measured (bench/gpu.sh)")

# AMD EPYC (Zen 4: avx512f, avx512_vnni, avx512_bf16, no AMX), 2 cores: served over gRPC at 512 documents
# per request, `bench/encode.py --batch-size 0` (bench/RESULTS.md, "On AVX-512 without AMX"). In-process
# openvino bf16 (3.22) and onnx-int8 (3.17) are level; served, int8 leads, and the order is the same at
# 128 per request. On an AVX-512 CPU without avx512_bf16 the bf16 paths are skipped (no native bf16).
AVX512_TABLE = "bench/RESULTS.md, On AVX-512 without AMX, served gRPC 512"
AVX512 = Ranking(
    (
        Candidate(Backend.ONNX_INT8, ratio=2.94, source=AVX512_TABLE),
        Candidate(OV, BF16, ratio=2.29, source=AVX512_TABLE),
        Candidate(T, BF16, ratio=2.11, source=AVX512_TABLE),
        Candidate(OV, ratio=1.60, source=AVX512_TABLE),
        Candidate(ONNX, ratio=1.55, source=AVX512_TABLE),
        Candidate(T, ratio=1.10, source=AVX512_TABLE),
        Candidate(Backend.OPENVINO_INT8, ratio=1.01, source=AVX512_TABLE),
    ),
    "measured on an AMD EPYC with AVX-512 and avx512_bf16, no AMX (bench/RESULTS.md)",
)

# CPUs whose flags could not be read: the AVX2 ranking stands in, and the choice's reason says so.
RANKINGS = {
    "amx": AMX,
    "avx512": AVX512,
    "avx2": AVX2,
    "other": Ranking(AVX2.candidates, "neither AVX2 nor AVX-512 flags read: the avx2 ranking stands in"),
    "cuda": CUDA,
}


def cpu_kind(features: CpuFeatures) -> str:
    """``amx`` (amx_bf16 and amx_int8), ``avx512`` (avx512f without AMX), ``avx2``, else ``other``."""
    if {"amx_bf16", "amx_int8"} <= features.flags:
        return "amx"
    if "avx512f" in features.flags:
        return "avx512"
    return "avx2" if "avx2" in features.flags else "other"


@dataclass(frozen=True)
class Runtime:
    """What this process offers besides the CPU's flags.

    Attributes:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        openvino: whether OpenVINO imports.
        spec: the spec asked for; None: the artifact's own. The graphs pool by the artifact's pooling and
            the precision checks were measured with its spec: another pooling leaves the graphs out, any
            other change (max_length, normalize) the lower precisions.
    """

    device: str = "cpu"
    openvino: bool = False
    spec: ModelSpec | None = None

    @property
    def on_cpu(self) -> bool:
        return str(self.device).partition(":")[0] == "cpu"


@dataclass(frozen=True)
class Choice:
    """What auto chose and why.

    Attributes:
        backend, dtype: the path to open.
        cpu_kind: this CPU's kind (:func:`cpu_kind`).
        ranking: the ranking walked (``cuda`` on a GPU; the stand-in's name is in ``reason``).
        reason: why this path: its place, its figure and its quality record.
        considered: each faster path and why it was skipped, fastest first.
    """

    backend: Backend
    dtype: DType
    cpu_kind: str
    ranking: str
    reason: str
    considered: tuple[dict, ...] = ()

    @property
    def path(self) -> str:
        return precision_path(self.backend, self.dtype)

    def to_dict(self) -> dict:
        return {
            "cpu_kind": self.cpu_kind,
            "ranking": self.ranking,
            "chosen": self.path,
            "reason": self.reason,
            "considered": [dict(skipped) for skipped in self.considered],
        }


def choose_backend(features: CpuFeatures, config: ArtifactConfig | None, runtime: Runtime) -> Choice:
    """The first path of this CPU kind's ranking that runs here and keeps its quality (see the module).

    Args:
        features: the CPU's flags.
        config: the artifact's config; None for a model directory (no graphs, no precision checks).
        runtime: the device, whether OpenVINO imports, the spec asked for.
    """
    kind = cpu_kind(features)
    name = kind if runtime.on_cpu else "cuda"
    ranking = RANKINGS[name]
    skipped = []
    for candidate in ranking.candidates:
        why_not = skip_reason(candidate, features, config, runtime)
        if why_not is None:
            reason = (
                f"{candidate.path}: the fastest path of the {name} ranking that runs here and keeps its quality "
                f"({len(skipped)} faster skipped); {_figure(candidate)}; {_quality(candidate, config)}; "
                f"ranking: {ranking.note}"
            )
            return Choice(candidate.backend, candidate.dtype, kind, name, reason, tuple(skipped))
        skipped.append({"path": candidate.path, "skipped": why_not})
    raise ConfigError(  # every ranking holds torch float32, which always runs: a broken ranking
        f"backend auto found no path to run in the {name} ranking ({skipped}); name a backend, e.g. torch"
    )


def skip_reason(
    candidate: Candidate, features: CpuFeatures, config: ArtifactConfig | None, runtime: Runtime
) -> str | None:
    """Why ``candidate`` cannot serve this artifact here, or None when it can."""
    backend = candidate.backend
    if backend is not Backend.TORCH:
        if not runtime.on_cpu:
            return f"auto considers only torch on device {runtime.device}"
        graph = ONNX_INT8_FILE if backend.int8 else ONNX_FILE
        if config is None:
            return f"a model directory, not an artifact: no {graph} (auto never exports one at start-up)"
        if config.onnx_file(backend.int8) is None:
            return f"no {graph} in the artifact (auto never exports one at start-up)"
        if runtime.spec is not None and runtime.spec.pooling is not config.spec.pooling:
            return f"{graph} pools by {config.spec.pooling.value}, not {runtime.spec.pooling.value} as asked"
        if backend in (Backend.OPENVINO, Backend.OPENVINO_INT8) and not runtime.openvino:
            return "OpenVINO is not installed (pip install 'tunerflow[openvino]')"
    if candidate.dtype is DType.BFLOAT16 and runtime.on_cpu and not features.bf16:
        return "this CPU has no native bf16 (avx512_bf16 or AMX): it would be emulated, slower than float32"
    if candidate.lower_precision:
        return _quality_shortfall(candidate, config, runtime)
    return None


def _quality_shortfall(candidate: Candidate, config: ArtifactConfig | None, runtime: Runtime) -> str | None:
    if config is None:
        return "a model directory, not an artifact: no precision check recorded, so fp32 only"
    check = config.precision_checks.get(candidate.path)
    if check is None:
        return "no precision check recorded at publication: a lower precision serves only with one that qualifies"
    if runtime.spec is not None and runtime.spec != config.spec:
        return "its precision check was measured with the artifact's own spec, not the one asked for"
    if not check.qualifies:
        return f"{check.metric} {check.value:.5f} against fp32 {check.fp32:.5f}: drop beyond the bound {check.bound:g}"
    return None


def _figure(candidate: Candidate) -> str:
    if candidate.ratio is None:
        return "no measured figure"
    return f"{candidate.ratio:.2f}x sentence-transformers ({candidate.source})"


def _quality(candidate: Candidate, config: ArtifactConfig | None) -> str:
    if not candidate.lower_precision:
        return "float32: no quality bound needed"
    check = config.precision_checks[candidate.path]
    return (
        f"{check.metric} {check.value:.5f} against fp32 {check.fp32:.5f} on {check.texts} texts, "
        f"within the bound {check.bound:g}"
    )
