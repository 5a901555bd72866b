"""ONNX Runtime inference (fp32 or int8 graphs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunerflow.errors import DeviceError
from tunerflow.export.onnx_export import ONNX_OUTPUT
from tunerflow.inference.base import InferenceBackend
from tunerflow.modeling.embedding_model import ModelSpec


class OnnxBackend(InferenceBackend):
    """Runs an exported graph with ONNX Runtime on the CPU or, if installed, CUDA."""

    name = "onnx"

    def __init__(
        self,
        onnx_path: Path,
        tokenizer,
        spec: ModelSpec,
        device: str = "cpu",
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        super().__init__(tokenizer, spec, batch_size)
        self.path = Path(onnx_path)
        providers = _providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.session.run([ONNX_OUTPUT], feeds)[0].astype(np.float32, copy=False)


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
