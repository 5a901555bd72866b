"""Backends and their options: each option has a test that fails if it were ignored."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import TEXTS
from tunerflow.api import encode, get_model
from tunerflow.errors import ConfigError, DataError, DeviceError
from tunerflow.format import Architecture
from tunerflow.inference.batching import length_sorted_batches
from tunerflow.inference.cpu import CpuFeatures, choose_dtype, parse_cpuinfo
from tunerflow.options import DType


def test_order_is_restored_after_length_sorting(tiny_model_dir):
    model = get_model(tiny_model_dir, batch_size=3)
    together = model.embed(TEXTS)
    one_by_one = np.stack([model.embed([text])[0] for text in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_batches_are_length_sorted():
    token_ids = [[1] * n for n in (3, 9, 1, 7, 5)]
    batches = list(length_sorted_batches(token_ids, batch_size=2, pad_id=0))
    assert [list(b[0]) for b in batches] == [[1, 3], [4, 0], [2]]
    assert [b[1].shape[1] for b in batches] == [9, 5, 1]


def test_token_budget_batches_cover_every_text_once_within_the_budget():
    lengths = [3, 9, 1, 7, 5, 5, 2, 12, 4, 4, 6, 1]
    token_ids = [[10 + i] * n for i, n in enumerate(lengths)]
    batches = list(length_sorted_batches(token_ids, batch_size=100, pad_id=0, max_tokens=14))
    positions = np.concatenate([b[0] for b in batches])
    assert sorted(positions.tolist()) == list(range(len(lengths)))  # every text, exactly once
    for rows, input_ids, mask in batches:
        assert input_ids.size <= 14 or len(rows) == 1  # a text over the budget goes alone
        for row, position in enumerate(rows):  # each row holds its own text, padded after it
            assert input_ids[row, : lengths[position]].tolist() == token_ids[position]
            assert mask[row].tolist() == [1] * lengths[position] + [0] * (input_ids.shape[1] - lengths[position])
    assert [len(b[0]) for b in batches] == [1, 1, 2, 2, 3, 3]  # short texts in larger batches
    assert [len(b[0]) for b in length_sorted_batches(token_ids, batch_size=2, pad_id=0, max_tokens=1000)] == [2] * 6


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_token_budget_gives_the_same_embeddings_in_the_callers_order(tiny_model_dir, backend):
    whole = get_model(tiny_model_dir, backend=backend, batch_size=64, max_tokens=None).embed(TEXTS)
    budgeted = get_model(tiny_model_dir, backend=backend, batch_size=64, max_tokens=12)
    calls = []
    original = budgeted.forward
    budgeted.forward = lambda ids, mask: calls.append(ids.size) or original(ids, mask)
    np.testing.assert_allclose(budgeted.embed(TEXTS), whole, atol=1e-5)
    assert len(calls) > 1  # the budget did cut the request into several passes


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_batch_size_sets_forward_calls(tiny_model_dir, backend, monkeypatch):
    model = get_model(tiny_model_dir, backend=backend, batch_size=3)
    calls = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, mask: calls.append(len(ids)) or original(ids, mask))
    model.embed(TEXTS)
    assert calls == [3, 3, 2]
    calls.clear()
    model.embed(TEXTS, batch_size=8)
    assert calls == [8]


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_max_length_truncates(tiny_model_dir, backend):
    long_text = "the best way to learn python is to play guitar with cats and dogs " * 3
    short = get_model(tiny_model_dir, backend=backend, max_length=6)
    assert np.allclose(short.embed([long_text]), short.embed([long_text + " more words here"]), atol=1e-5)
    full = get_model(tiny_model_dir, backend=backend, max_length=64)
    assert not np.allclose(full.embed([long_text]), short.embed([long_text]), atol=1e-3)


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_normalize(tiny_model_dir, backend):
    raw = get_model(tiny_model_dir, backend=backend, normalize=False).embed(TEXTS)
    unit = get_model(tiny_model_dir, backend=backend, normalize=True).embed(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    per_call = get_model(tiny_model_dir, backend=backend, normalize=False).embed(TEXTS, normalize=True)
    np.testing.assert_allclose(per_call, unit, atol=1e-5)


def test_pooling_option_reaches_the_model(tiny_model_dir):
    mean = get_model(tiny_model_dir, pooling="mean").embed(TEXTS)
    cls = get_model(tiny_model_dir, pooling="cls").embed(TEXTS)
    assert not np.allclose(mean, cls, atol=1e-3)
    np.testing.assert_allclose(get_model(tiny_model_dir, is_onnx=True, pooling="cls").embed(TEXTS), cls, atol=1e-4)


def test_bfloat16_is_close_to_float32_but_not_equal(tiny_model_dir):
    fp32 = get_model(tiny_model_dir, dtype="float32").embed(TEXTS)
    bf16 = get_model(tiny_model_dir, dtype="bfloat16").embed(TEXTS)
    assert not np.allclose(fp32, bf16, atol=1e-6)
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99


def test_dtype_is_refused_for_onnx(tiny_model_dir):
    with pytest.raises(ConfigError, match="torch and openvino backends only"):
        get_model(tiny_model_dir, is_onnx=True, dtype="bfloat16")


def test_threads(tiny_model_dir):
    before = torch.get_num_threads()
    try:
        get_model(tiny_model_dir, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    onnx_model = get_model(tiny_model_dir, is_onnx=True, threads=1)
    assert onnx_model.session.get_session_options().intra_op_num_threads == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_cuda_without_gpu_is_an_error_not_a_fallback(tiny_model_dir, backend):
    with pytest.raises(DeviceError, match="cuda"):
        get_model(tiny_model_dir, backend=backend, device="cuda")


def test_unknown_options_list_choices(tiny_model_dir):
    with pytest.raises(ConfigError, match="torch, onnx, onnx-int8"):
        get_model(tiny_model_dir, backend="tensorrt")
    with pytest.raises(ConfigError, match="float32, bfloat16"):
        get_model(tiny_model_dir, dtype="fp8")
    with pytest.raises(DeviceError):
        get_model(tiny_model_dir, device="tpu")
    with pytest.raises(ConfigError, match="batch_size"):
        get_model(tiny_model_dir, batch_size=0)


def test_encode_list_and_doclist(tiny_model_dir):
    from docarray import DocList
    from docarray.documents import TextDoc

    model = get_model(tiny_model_dir)
    array = encode(model, TEXTS)
    assert array.shape == (len(TEXTS), 32) and array.dtype == np.float32
    docs = DocList[TextDoc]([TextDoc(text=t) for t in TEXTS])
    assert encode(model, docs) is docs
    np.testing.assert_allclose(np.stack([np.asarray(d.embedding) for d in docs]), array, atol=1e-6)


def test_bad_inputs(tiny_model_dir):
    from docarray import DocList
    from docarray.documents import TextDoc

    model = get_model(tiny_model_dir)
    with pytest.raises(DataError, match="one string"):
        model.embed("just one text")
    with pytest.raises(DataError, match="text 1"):
        model.embed(["fine", None])
    with pytest.raises(DataError, match="document 1 .* has no text"):
        encode(model, DocList[TextDoc]([TextDoc(text="a"), TextDoc()]))
    assert model.embed([]).shape == (0, 32)


@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"])
def test_every_backend_refuses_a_max_length_beyond_the_positions_alike(tiny_model_dir, backend):
    with pytest.raises(ConfigError) as error:
        get_model(tiny_model_dir, backend=backend, max_length=65)  # the tiny BERT has 64 positions
    assert str(error.value) == "max_length must be between 2 and 64 for this model, got 65"
    assert get_model(tiny_model_dir, backend=backend, max_length=64).spec.max_length == 64


def test_a_backend_built_directly_checks_its_spec(tiny_model_dir):
    from dataclasses import replace

    from tunerflow.inference.onnx_backend import OnnxBackend

    onnx_model = get_model(tiny_model_dir, is_onnx=True)
    too_long = replace(onnx_model.spec, max_length=65)
    architecture = Architecture.read(onnx_model.path.parent)
    with pytest.raises(ConfigError, match="between 2 and 64"):
        OnnxBackend(onnx_model.path, onnx_model.tokenizer, too_long, architecture)


@pytest.fixture(scope="module")
def causal_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny BERT as a decoder: each token attends only to the tokens before it."""
    directory = tmp_path_factory.mktemp("causal") / "bert"
    shutil.copytree(tiny_model_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "is_decoder": True}))
    return directory


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_every_backend_refuses_cls_pooling_of_a_causal_model_alike(causal_model_dir, backend):
    with pytest.raises(ConfigError) as error:
        get_model(causal_model_dir, backend=backend, pooling="cls")
    assert str(error.value) == (
        "cls pooling takes the first token, which in a causal bert model sees no other token; use mean or max pooling"
    )
    assert get_model(causal_model_dir, backend=backend, pooling="mean").embed(TEXTS).shape == (len(TEXTS), 32)


AMX_BOX = "flags\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_int8 amx_tile\nmodel name\t: Intel Xeon Platinum 8480+\n"
ZEN4_BOX = "model name\t: AMD EPYC 9R14\nflags\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2_BOX = "model name\t: Intel Xeon E5-2686 v4\nflags\t: fpu avx avx2 fma\n"


@pytest.mark.parametrize(
    "cpuinfo, backend, device, requested, chosen",
    [
        (AMX_BOX, "torch", "cpu", "auto", DType.BFLOAT16),
        (ZEN4_BOX, "torch", "cpu", "auto", DType.BFLOAT16),
        (AVX2_BOX, "torch", "cpu", "auto", DType.FLOAT32),
        (AMX_BOX, "onnx-int8", "cpu", "auto", DType.FLOAT32),  # the graph carries its precision
        (AMX_BOX, "openvino", "cpu", "auto", DType.BFLOAT16),
        (AVX2_BOX, "openvino", "cpu", "auto", DType.FLOAT32),
        (AMX_BOX, "openvino-int8", "cpu", "auto", DType.FLOAT32),
        (AMX_BOX, "torch", "cuda:0", "auto", DType.FLOAT32),  # a GPU's bf16 is no CPU flag
        (AVX2_BOX, "torch", "cpu", "bfloat16", DType.BFLOAT16),  # explicit values are honoured
        (AMX_BOX, "torch", "cpu", "float32", DType.FLOAT32),
    ],
)
def test_dtype_auto_follows_the_cpus_bf16_support(cpuinfo, backend, device, requested, chosen):
    flags, model = parse_cpuinfo(cpuinfo)
    assert choose_dtype(requested, backend, CpuFeatures(flags, None, model), device=device) is chosen


def test_dtype_auto_reaches_the_backend(tiny_model_dir, monkeypatch):
    import tunerflow.inference.factory as factory

    for flags, expected in ((frozenset({"amx_bf16"}), DType.BFLOAT16), (frozenset({"avx2"}), DType.FLOAT32)):
        monkeypatch.setattr(factory, "cpu_features", lambda flags=flags: CpuFeatures(flags))
        assert get_model(tiny_model_dir, dtype="auto").dtype is expected
