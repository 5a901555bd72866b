"""ONNX Runtime inference (fp32 or int8 graphs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunerflow.errors import ConfigError, DeviceError
from tunerflow.export.onnx_export import run_session
from tunerflow.format import Architecture, ArtifactConfig, ModelSpec
from tunerflow.inference.base import DEFAULT_MAX_TOKENS, InferenceBackend
from tunerflow.options import Backend

ONNX_BACKENDS = (Backend.ONNX, Backend.ONNX_INT8)


class OnnxBackend(InferenceBackend):
    """Runs an exported graph with ONNX Runtime on the CPU or, if installed, CUDA.

    Args:
        onnx_path: the graph (``model.onnx`` or ``model.int8.onnx``).
        tokenizer: the model's tokenizer.
        spec: the spec to embed with (checked against ``architecture``).
        architecture: the limits of the exported model (its ``config.json``).
        backend: ``onnx`` or ``onnx-int8``, the backend's name.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: at most this many texts per run.
        max_tokens: at most this many padded tokens per run (None: no limit but ``batch_size``).
        threads: intra-op threads (default: onnxruntime's).
        artifact: the config of the artifact the graph belongs to.
    """

    name = Backend.ONNX.value

    def __init__(
        self,
        onnx_path: Path,
        tokenizer,
        spec: ModelSpec,
        architecture: Architecture,
        *,
        backend: Backend = Backend.ONNX,
        device: str = "cpu",
        batch_size: int = 32,
        threads: int | None = None,
        artifact: ArtifactConfig | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        import onnxruntime as ort

        if Backend(backend) not in ONNX_BACKENDS:
            raise ConfigError(f"OnnxBackend runs the onnx and onnx-int8 backends, not {Backend(backend).value}")
        super().__init__(tokenizer, spec, architecture, batch_size, artifact, max_tokens)
        self.name = Backend(backend).value
        self.path = Path(onnx_path)
        providers = _providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return run_session(self.session, input_ids, attention_mask)

    def runtime(self) -> dict:
        import onnxruntime as ort

        options = self.session.get_session_options()
        return {
            "library": "onnxruntime",
            "version": ort.__version__,
            "file": self.path.name,
            "providers": self.session.get_providers(),
            "threads": options.intra_op_num_threads or None,  # 0: onnxruntime's default
        }


def _providers(device: str, available: list[str]) -> list:
    kind, _, index = str(device).partition(":")
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise DeviceError(
                f"device {device!r} asked for, but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use device='cpu'"
            )
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)})]
    raise DeviceError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
