"""ONNX export: declared signature, parity with PyTorch, int8 quantisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TEXTS
from tunerflow.api import get_model
from tunerflow.artifact import load_artifact, load_model
from tunerflow.errors import ExportParityError
from tunerflow.export import check_parity, export_onnx, save_artifact


@pytest.fixture(scope="module")
def onnx_artifact(tiny_model_dir, tmp_path_factory):
    loaded = load_model(tiny_model_dir, max_length=32)
    return save_artifact(loaded, tmp_path_factory.mktemp("onnx") / "a", to_onnx=True, int8=True, probe_texts=TEXTS)


def test_graph_signature_and_dynamic_axes(onnx_artifact):
    import onnx

    graph = onnx.load(str(onnx_artifact / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["embedding"]
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and dims[1].dim_param == "sequence"


def test_config_records_parity_and_int8_cosine(onnx_artifact):
    config = json.loads((onnx_artifact / "tunerflow.json").read_text())
    # The recorded parity is the one measured on this graph (the same seeded batches, measured again).
    loaded = load_artifact(onnx_artifact)
    assert config["onnx"]["parity_max_abs_diff"] == pytest.approx(check_parity(loaded, onnx_artifact / "model.onnx"))
    assert 0.5 < config["onnx_int8"]["cosine_to_fp32_mean"] <= 1.0 + 1e-6
    assert config["onnx_int8"]["probe_size"] == len(TEXTS)
    # The recorded cosines are those of the int8 graph to the fp32 one on the probe texts, one text per run.
    fp32 = get_model(onnx_artifact, backend="onnx", batch_size=1).embed(TEXTS)
    int8 = get_model(onnx_artifact, backend="onnx-int8", batch_size=1).embed(TEXTS)
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert config["onnx_int8"]["cosine_to_fp32_mean"] == pytest.approx(cosine.mean(), abs=1e-6)
    assert config["onnx_int8"]["cosine_to_fp32_min"] == pytest.approx(cosine.min(), abs=1e-6)


def test_onnx_backend_agrees_with_torch(onnx_artifact):
    texts = TEXTS + ["why " * n for n in range(1, 40, 7)]  # random-ish lengths, some truncated
    torch_out = get_model(onnx_artifact).embed(texts)
    onnx_out = get_model(onnx_artifact, is_onnx=True).embed(texts)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)


def test_int8_backend_is_close_but_not_identical(onnx_artifact):
    fp32 = get_model(onnx_artifact, backend="onnx").embed(TEXTS)
    int8 = get_model(onnx_artifact, backend="onnx-int8").embed(TEXTS)
    assert not np.allclose(fp32, int8, atol=1e-6)
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.mean() > 0.9


def test_parity_failure_raises(tiny_model_dir, tmp_path):
    loaded = load_model(tiny_model_dir)
    path = tmp_path / "m.onnx"
    export_onnx(loaded, path)
    with torch.no_grad():
        weight = loaded.model.backbone.embeddings.word_embeddings.weight
        weight.add_(torch.randn_like(weight))  # not a constant: LayerNorm would cancel a shift
    with pytest.raises(ExportParityError, match="differs from PyTorch"):
        check_parity(loaded, path)


def test_onnx_backend_exports_plain_models_once(tiny_model_dir, tmp_path, monkeypatch):
    from tunerflow.inference import factory
    from tunerflow.paths import cache_dir

    monkeypatch.setenv("TUNERFLOW_CACHE", str(tmp_path / "cache"))  # no export from another test
    exports = []
    monkeypatch.setattr(factory, "save_artifact", lambda *a, **k: exports.append(a[1]) or save_artifact(*a, **k))
    first = get_model(tiny_model_dir, is_onnx=True)
    cached = list(cache_dir("onnx").iterdir())
    modified = first.path.stat().st_mtime_ns
    second = get_model(tiny_model_dir, is_onnx=True)
    assert len(exports) == 1 and cached == [exports[0]]
    assert list(cache_dir("onnx").iterdir()) == cached
    assert first.path == second.path and second.path.stat().st_mtime_ns == modified
    np.testing.assert_allclose(first.embed(TEXTS), get_model(tiny_model_dir).embed(TEXTS), atol=1e-4)
