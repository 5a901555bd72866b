"""Export an EmbeddingModel to ONNX: declared spec, export, ``onnx.checker``, parity.

The graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and
sequence axes) and returns one output, ``embedding`` (float32, pooled, not
normalised). Parity against PyTorch is checked on random token sequences of
random lengths; a difference above the tolerance raises ExportParityError.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from tunerflow.errors import ExportParityError
from tunerflow.format import ONNX_INPUTS, ONNX_OUTPUT, OnnxInfo
from tunerflow.modeling.loading import LoadedModel

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4
_DYNAMIC_AXES = {**{name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS}, ONNX_OUTPUT: {0: "batch"}}


def export_onnx(loaded: LoadedModel, path: Path, tolerance: float = PARITY_TOLERANCE, seed: int = 0) -> OnnxInfo:
    """Export ``loaded.model`` to ``path`` and return what the artifact records about it."""
    import onnx

    model = loaded.model.eval()
    sample_ids, sample_mask = random_inputs(loaded, batch=2, max_len=16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow in transformers
        torch.onnx.export(
            model,
            (sample_ids, sample_mask),
            str(path),
            input_names=list(ONNX_INPUTS),
            output_names=[ONNX_OUTPUT],
            dynamic_axes=_DYNAMIC_AXES,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    max_diff = check_parity(loaded, path, tolerance=tolerance, seed=seed)
    log.info("exported %s (max abs difference to PyTorch %.2e)", path, max_diff)
    return OnnxInfo(file=path.name, opset=OPSET, parity_max_abs_diff=max_diff, parity_tolerance=tolerance)


def random_inputs(
    loaded: LoadedModel, batch: int, max_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids with random lengths (2..max_len), right-padded like the tokenizer."""
    vocab = int(loaded.model.backbone.config.vocab_size)
    pad_id = int(loaded.tokenizer.pad_token_id or 0)
    lengths = torch.randint(2, max_len + 1, (batch,), generator=generator)
    lengths[0] = max_len  # the longest row fixes the padded width
    ids = torch.randint(1, vocab, (batch, max_len), generator=generator)
    mask = (torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return ids.masked_fill(mask == 0, pad_id), mask


def check_parity(loaded: LoadedModel, path: Path, tolerance: float = PARITY_TOLERANCE, seed: int = 0) -> float:
    """Largest |ONNX - PyTorch| over random batches; raise ExportParityError above ``tolerance``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed + 1)
    limit = min(loaded.spec.max_length, 64)
    worst = 0.0
    for batch, max_len in ((1, 3), (3, limit), (5, max(4, limit // 2))):
        ids, mask = random_inputs(loaded, batch, max_len, generator)
        with torch.no_grad():
            expected = loaded.model(ids, mask).numpy()
        got = run_session(session, ids.numpy(), mask.numpy())
        if got.shape != expected.shape:
            raise ExportParityError(f"{path}: ONNX output shape {got.shape} differs from PyTorch {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > tolerance:
        raise ExportParityError(f"{path}: ONNX differs from PyTorch by up to {worst:.3g} (tolerance {tolerance:g})")
    return worst


def run_session(session, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The graph's pooled float32 output for one padded batch (an onnxruntime ``InferenceSession``)."""
    feeds = dict(zip(ONNX_INPUTS, (input_ids, attention_mask), strict=True))
    return session.run([ONNX_OUTPUT], feeds)[0].astype(np.float32, copy=False)
