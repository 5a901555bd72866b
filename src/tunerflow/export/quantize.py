"""int8 dynamic quantisation (per channel) of an exported ONNX model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tunerflow.export.onnx_export import run_session
from tunerflow.format import Int8Info
from tunerflow.modeling.loading import LoadedModel

log = logging.getLogger(__name__)

# A small, varied probe set for the fp32-vs-int8 cosine when no texts are given.
DEFAULT_PROBE_TEXTS = [
    "how do i learn to play the guitar quickly ?",
    "What is the best way to learn a new language as an adult?",
    "The weather in Lisbon is mild in winter.",
    "why is the sky blue during the day and red at sunset ?",
    "Install the package with pip and run the tests.",
    "what are the health benefits of green tea ?",
    "A quick brown fox jumps over the lazy dog.",
    "How can I improve my credit score fast?",
    "the capital of australia is canberra , not sydney .",
    "Which programming language should a beginner start with?",
    "what is marmite made of ?",
    "Gradient descent minimises a loss by following its negative gradient.",
    "how many bones are in the human body ?",
    "Is it safe to travel to Iceland in December?",
    "The court ruled that the contract was void.",
    "what causes earthquakes and can they be predicted ?",
]


def quantize_int8(
    loaded: LoadedModel, fp32_path: Path, int8_path: Path, probe_texts: list[str] | None = None
) -> Int8Info:
    """Write ``int8_path`` from ``fp32_path``; return its cosine to fp32 on the probe texts."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_drop_preprocessing_hint)
    try:
        quantize_dynamic(str(fp32_path), str(int8_path), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_drop_preprocessing_hint)
    texts = list(probe_texts or DEFAULT_PROBE_TEXTS)
    cosine = _row_cosine(probe_embeddings(loaded, fp32_path, texts), probe_embeddings(loaded, int8_path, texts))
    result = Int8Info(
        file=int8_path.name,
        method="onnxruntime dynamic quantisation, int8 weights, per channel",
        probe_size=len(texts),
        cosine_to_fp32_mean=float(cosine.mean()),
        cosine_to_fp32_min=float(cosine.min()),
    )
    log.info("int8 model: cosine to fp32 mean %.5f, min %.5f", result.cosine_to_fp32_mean, result.cosine_to_fp32_min)
    return result


def probe_embeddings(loaded: LoadedModel, onnx_path: Path, texts: list[str]) -> np.ndarray:
    """Pooled embeddings of ``texts`` by the graph at ``onnx_path``, one text per run.

    One at a time because int8 dynamic quantisation scales activations per
    tensor: padding and batch-mates would shift a text's embedding.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        encoded = loaded.tokenizer(
            [text], truncation=True, max_length=loaded.spec.max_length, return_tensors="np", return_token_type_ids=False
        )
        ids, mask = (encoded[key].astype(np.int64) for key in ("input_ids", "attention_mask"))
        rows.append(run_session(session, ids, mask)[0])
    return np.stack(rows)


def _drop_preprocessing_hint(record: logging.LogRecord) -> bool:
    """onnxruntime logs an advisory on the root logger at every call; it does not apply here."""
    return "pre-processing before quantization" not in record.getMessage()


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)
