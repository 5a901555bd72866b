"""The openvino and openvino-int8 backends: the artifact's ONNX graphs run by OpenVINO, as the others embed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TEXTS
from tunerflow.api import get_model
from tunerflow.artifact import load_model
from tunerflow.errors import ConfigError, DataError, DeviceError
from tunerflow.export import save_artifact
from tunerflow.format import Architecture
from tunerflow.inference.cpu import cpu_features
from tunerflow.options import DType

# Lengths from 1 to past max_length (32), so that length sorting reorders and truncation applies.
MIXED = TEXTS + ["why " * n for n in range(1, 40, 7)] + ["how do cats learn python"]
BF16 = cpu_features().bf16


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


@pytest.fixture(scope="module")
def artifact(tiny_model_dir, tmp_path_factory):
    loaded = load_model(tiny_model_dir, max_length=32)
    return save_artifact(loaded, tmp_path_factory.mktemp("ov") / "a", to_onnx=True, int8=True, probe_texts=TEXTS)


@pytest.fixture(scope="module")
def torch_fp32(artifact):
    return get_model(artifact).embed(MIXED)


def test_openvino_equals_torch_and_onnx_in_the_callers_order(artifact, torch_fp32):
    onnx = get_model(artifact, backend="onnx").embed(MIXED)
    model = get_model(artifact, backend="openvino", batch_size=4, max_tokens=40)  # several sorted passes
    assert model.path.name == "model.onnx" and model.dtype is DType.FLOAT32
    together = model.embed(MIXED)
    one_by_one = np.stack([model.embed([text])[0] for text in MIXED])
    for got in (together, one_by_one):
        np.testing.assert_allclose(got, torch_fp32, atol=1e-4)
        np.testing.assert_allclose(got, onnx, atol=1e-4)
        assert _cosine(got, torch_fp32).min() > 0.9999


def test_openvino_runs_float32_by_default_whatever_the_cpu(artifact):
    """OpenVINO's CPU plugin would pick bf16 by itself on CPUs with AMX: float32 is asked for explicitly."""
    runtime = get_model(artifact, backend="openvino").runtime()
    assert (runtime["library"], runtime["inference_precision"], runtime["file"]) == ("openvino", "f32", "model.onnx")


def test_openvino_empty_and_bad_input_as_the_others(artifact):
    model = get_model(artifact, backend="openvino")
    empty = model.embed([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32
    with pytest.raises(DataError, match="one string"):
        model.embed("just one text")


def test_openvino_int8_runs_the_int8_graph_as_well_as_its_record_says(artifact):
    """OpenVINO computes the int8 graph its own way (on all-MiniLM-L6-v2 its embeddings are as far from
    onnxruntime's as from fp32), but as close to fp32 as the artifact records for onnxruntime."""
    model = get_model(artifact, backend="openvino-int8", batch_size=1)
    assert model.path.name == "model.int8.onnx"
    fp32 = get_model(artifact, backend="onnx", batch_size=1).embed(TEXTS)
    got = model.embed(TEXTS)  # the probe texts the record was measured on, one per run as it was
    assert not np.allclose(got, fp32, atol=1e-5)  # quantised: not the fp32 graph
    recorded = model.artifact.onnx_int8
    assert abs(_cosine(got, fp32).mean() - recorded.cosine_to_fp32_mean) < 0.01
    assert _cosine(got, fp32).min() > recorded.cosine_to_fp32_min - 0.01


@pytest.mark.skipif(not BF16, reason="this CPU has no native bf16 (avx512_bf16 or AMX)")
def test_openvino_bfloat16_is_close_to_float32_but_not_equal(artifact, torch_fp32):
    model = get_model(artifact, backend="openvino", dtype="bfloat16")
    assert model.dtype is DType.BFLOAT16 and model.runtime()["inference_precision"] == "bf16"
    got = model.embed(MIXED)
    assert not np.allclose(got, torch_fp32, atol=1e-6)
    assert _cosine(got, torch_fp32).min() > 0.99


@pytest.mark.skipif(BF16, reason="this CPU runs bf16: nothing to refuse")
def test_openvino_bfloat16_without_native_bf16_is_refused_not_run_as_float32(artifact):
    with pytest.raises(ConfigError, match="OpenVINO runs f32, not bf16, on this CPU .*use dtype float32, or auto"):
        get_model(artifact, backend="openvino", dtype="bfloat16")


def test_openvino_dtype_auto_runs_bf16_only_where_the_cpu_has_it(artifact):
    model = get_model(artifact, backend="openvino", dtype="auto")
    assert model.dtype is (DType.BFLOAT16 if BF16 else DType.FLOAT32)
    assert model.runtime()["inference_precision"] == ("bf16" if BF16 else "f32")


def test_openvino_threads_and_latency_hint(artifact):
    runtime = get_model(artifact, backend="openvino", threads=1).runtime()
    assert (runtime["threads"], runtime["performance_hint"], runtime["streams"]) == (1, "LATENCY", 1)


def test_openvino_configuration_errors_are_clear(artifact):
    with pytest.raises(DeviceError, match="runs on the CPU only, got device 'cuda'"):
        get_model(artifact, backend="openvino", device="cuda")
    with pytest.raises(ConfigError, match="the openvino-int8 graph carries its own precision"):
        get_model(artifact, backend="openvino-int8", dtype="bfloat16")
    with pytest.raises(ConfigError, match="torch, onnx, onnx-int8, openvino, openvino-int8"):
        get_model(artifact, backend="openvino-fp16")


def test_a_graph_openvino_cannot_compile_is_a_clear_error(artifact, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from tunerflow.inference.openvino_backend import OpenVinoBackend

    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask")
    ]
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 32])
    node = helper.make_node("Pool", ["input_ids", "attention_mask"], ["embedding"], domain="org.example")
    graph = helper.make_graph([node], "unknown-op", inputs, [output])
    path = tmp_path / "model.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("org.example", 1)]),
        path,
    )
    model = get_model(artifact, backend="openvino")
    with pytest.raises(ConfigError) as error:
        OpenVinoBackend(path, model.tokenizer, model.spec, Architecture.read(artifact))
    message = str(error.value)
    assert "cannot compile" in message and "No conversion rule found for operations: org.example.Pool" in message
    assert message.endswith("use the onnx backend for this graph") and "Exception from" not in message
