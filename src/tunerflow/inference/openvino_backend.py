"""OpenVINO inference of the artifact's ONNX graphs on the CPU: fp32, bf16 where the CPU has it, or int8.

OpenVINO reads the ONNX file itself (no conversion step, nothing written next to it) and compiles it
with dynamic batch and sequence axes, so the length-sorted, token-budget batches of
:class:`InferenceBackend` run unchanged. Its CPU plugin picks bf16 on its own where the CPU has AMX or
AVX512-BF16, so the precision is always set explicitly, and what the compiled model reports is what
:attr:`OpenVinoBackend.dtype` says: a bf16 asked for that the CPU cannot run is an error, not float32.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from tunerflow.errors import ConfigError, DeviceError
from tunerflow.format import ONNX_INPUTS, ONNX_OUTPUT, Architecture, ArtifactConfig, ModelSpec
from tunerflow.inference.base import DEFAULT_MAX_TOKENS, InferenceBackend
from tunerflow.inference.cpu import choose_dtype, cpu_features
from tunerflow.options import Backend, DType, parse_enum

OPENVINO_BACKENDS = (Backend.OPENVINO, Backend.OPENVINO_INT8)
# OpenVINO's names of the precisions (``INFERENCE_PRECISION_HINT``) and ours.
PRECISIONS = {DType.FLOAT32: "f32", DType.BFLOAT16: "bf16"}
# One stream using every thread: embed() runs its batches one after another, and jina's dynamic
# batching merges concurrent requests into one call; THROUGHPUT would split the cores into streams
# of which one would be busy.
PERFORMANCE_HINT = "LATENCY"


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported here (``pip install 'tunerflow[openvino]'``), without importing it."""
    return importlib.util.find_spec("openvino") is not None


class OpenVinoBackend(InferenceBackend):
    """Runs an exported ONNX graph with OpenVINO on the CPU.

    Args:
        onnx_path: the graph (``model.onnx``, or ``model.int8.onnx`` for ``openvino-int8``).
        tokenizer: the model's tokenizer.
        spec: the spec to embed with (checked against ``architecture``).
        architecture: the limits of the exported model (its ``config.json``).
        backend: ``openvino`` or ``openvino-int8``, the backend's name.
        device: ``cpu`` only.
        dtype: ``float32``, ``bfloat16`` (where the CPU has native bf16) or ``auto``; the int8
            graph runs its other operations in float32.
        batch_size: at most this many texts per run.
        max_tokens: at most this many padded tokens per run (None: no limit but ``batch_size``).
        threads: inference threads (``INFERENCE_NUM_THREADS``; default: OpenVINO's, one per core).
        artifact: the config of the artifact the graph belongs to.
    """

    name = Backend.OPENVINO.value

    def __init__(
        self,
        onnx_path: Path,
        tokenizer,
        spec: ModelSpec,
        architecture: Architecture,
        *,
        backend: Backend = Backend.OPENVINO,
        device: str = "cpu",
        dtype: str | DType = DType.FLOAT32,
        batch_size: int = 32,
        threads: int | None = None,
        artifact: ArtifactConfig | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        backend = parse_enum(Backend, backend, "backend")
        if backend not in OPENVINO_BACKENDS:
            raise ConfigError(f"OpenVinoBackend runs the openvino and openvino-int8 backends, not {backend.value}")
        if str(device).partition(":")[0] != "cpu":
            raise DeviceError(
                f"the {backend.value} backend runs on the CPU only, got device {device!r}; "
                "use device='cpu', or the torch or onnx backend on a GPU"
            )
        wanted = choose_dtype(dtype, backend, cpu_features())
        if backend.int8 and wanted is not DType.FLOAT32:
            raise ConfigError(f"dtype {wanted.value!r}: the int8 graph carries its own precision; use dtype float32")
        super().__init__(tokenizer, spec, architecture, batch_size, artifact, max_tokens)
        self.name = backend.value
        self.path = Path(onnx_path)
        self.compiled = _compile(self.path, backend, wanted, threads)
        self.dtype = _running_dtype(self.compiled, wanted)
        self._output = self.compiled.output(ONNX_OUTPUT)
        self._requests = threading.local()  # an infer request serves one call at a time: one per thread

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        feeds = dict(zip(ONNX_INPUTS, (input_ids, attention_mask), strict=True))
        # The batch's own arrays are read in place; the output is a copy (share_outputs=False), not the
        # request's tensor, which the next call overwrites.
        outputs = request.infer(feeds, share_inputs=True, share_outputs=False)
        return outputs[self._output].astype(np.float32, copy=False)

    def runtime(self) -> dict:
        import openvino

        return {
            "library": "openvino",
            "version": openvino.get_version(),
            "file": self.path.name,
            "inference_precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "streams": int(self.compiled.get_property("NUM_STREAMS")),
            "cpu_pinning": bool(self.compiled.get_property("ENABLE_CPU_PINNING")),
        }


def _compile(path: Path, backend: Backend, dtype: DType, threads: int | None):
    """``path`` compiled for the CPU, or a ConfigError saying OpenVINO cannot run this graph."""
    try:
        import openvino
    except ImportError:
        raise ConfigError(f"the {backend.value} backend needs OpenVINO: pip install 'tunerflow[openvino]'") from None
    # OpenVINO binds its threads to cores (ENABLE_CPU_PINNING): unbound was tried, with no gain served and a
    # loss in-process (bench/RESULTS.md, "On AVX-512 without AMX"); /info reports the setting.
    config = {"INFERENCE_PRECISION_HINT": PRECISIONS[dtype], "PERFORMANCE_HINT": PERFORMANCE_HINT}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        return openvino.Core().compile_model(str(path), "CPU", config)
    except RuntimeError as error:  # how OpenVINO reports an unsupported operation or an unreadable file
        onnx = Backend.ONNX_INT8 if backend.int8 else Backend.ONNX
        raise ConfigError(
            f"OpenVINO {openvino.__version__.split('-')[0]} cannot compile {path} for the {backend.value} backend: "
            f"{_reason(error)}; use the {onnx.value} backend for this graph"
        ) from error


def _reason(error: Exception) -> str:
    """OpenVINO's message without its trace of source locations (``Exception from src/...``)."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    return " ".join(kept) or type(error).__name__


def _running_dtype(compiled, wanted: DType) -> DType:
    """The precision the compiled model runs: ``wanted``, or a ConfigError (bf16 the CPU cannot run)."""
    running = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    if running == PRECISIONS[wanted]:
        return wanted
    if wanted is DType.BFLOAT16:
        raise ConfigError(
            f"dtype 'bfloat16': OpenVINO runs {running}, not bf16, on this CPU ({cpu_features().model}: "
            "no native bf16, avx512_bf16 or AMX); use dtype float32, or auto (bfloat16 only where the CPU has it)"
        )
    raise ConfigError(f"OpenVINO compiled the graph to run in {running}, not {PRECISIONS[wanted]} as asked")
