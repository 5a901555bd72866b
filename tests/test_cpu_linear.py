"""float32 linear layers on oneDNN: the same products and gradients as torch's, and when ``auto`` picks it."""

from __future__ import annotations

import pytest
import torch

from tests.training_helpers import trained_weights
from tunerflow.inference.cpu import CpuFeatures, parse_cpuinfo_vendor
from tunerflow.inference.cpu_linear import choose_linear_kernel, linear_kernel, onednn_linear_works
from tunerflow.options import LinearKernel

needs_onednn = pytest.mark.skipif(not onednn_linear_works(), reason="this torch has no oneDNN linear op")
AMD = CpuFeatures(frozenset({"avx2", "avx512f"}), "AVX512", "AMD EPYC", "AuthenticAMD")
INTEL = CpuFeatures(frozenset({"avx2", "avx512f", "amx_bf16"}), "AVX512", "Intel Xeon", "GenuineIntel")
CPU = torch.device("cpu")


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 5)])
def test_onednn_linear_gives_torchs_products_and_gradients(bias, shape):
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 6, bias=bias)
    x = torch.randn(*shape)
    weight_of_output = torch.randn(*shape[:-1], 6)
    results = []
    for kernel in (LinearKernel.BLAS, LinearKernel.ONEDNN):
        layer.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_(True)
        with linear_kernel(kernel):
            output = layer(inputs)
        (output * weight_of_output).sum().backward()
        results.append((output.detach(), inputs.grad, layer.weight.grad, layer.bias.grad if bias else None))
    for blas, onednn in zip(*results, strict=True):
        if blas is not None:
            torch.testing.assert_close(onednn, blas, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_frozen_weights_get_no_gradient_and_autocast_is_left_alone():
    layer = torch.nn.Linear(4, 3)
    layer.weight.requires_grad_(False)
    inputs = torch.randn(2, 4, requires_grad=True)
    with linear_kernel(LinearKernel.ONEDNN):
        layer(inputs).sum().backward()
    assert layer.weight.grad is None and inputs.grad is not None and layer.bias.grad is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with linear_kernel(LinearKernel.ONEDNN):
            assert layer(inputs).dtype == torch.bfloat16  # autocast's own bf16 path, untouched


def test_auto_picks_onednn_on_amd_cpus_only():
    onednn = LinearKernel.ONEDNN if onednn_linear_works() else LinearKernel.BLAS
    assert choose_linear_kernel("auto", AMD, CPU) is onednn
    assert choose_linear_kernel("auto", INTEL, CPU) is LinearKernel.BLAS
    assert choose_linear_kernel("auto", CpuFeatures(frozenset()), CPU) is LinearKernel.BLAS  # vendor unknown
    other = CpuFeatures(frozenset(), None, "z15", "IBM/S390")
    assert choose_linear_kernel("auto", other, CPU) is LinearKernel.BLAS  # not an x86 CPU MKL was measured slow on
    assert choose_linear_kernel("blas", AMD, CPU) is LinearKernel.BLAS  # the user's setting wins
    assert choose_linear_kernel("onednn", INTEL, CPU) is onednn
    assert choose_linear_kernel("onednn", AMD, torch.device("cuda", 0)) is LinearKernel.BLAS  # a GPU: its own
    with pytest.raises(Exception, match="linear_kernel"):
        choose_linear_kernel("mkl-please", AMD, CPU)


def test_cpuinfo_gives_the_vendor():
    text = "processor : 0\nvendor_id : AuthenticAMD\nmodel name : AMD EPYC 9B45\nflags : fpu avx2 avx512f\n"
    assert parse_cpuinfo_vendor(text) == (frozenset({"avx2", "avx512f"}), "AMD EPYC 9B45", "AuthenticAMD")


@needs_onednn
def test_a_run_on_onednn_trains_the_weights_a_blas_run_trains(tmp_path, tiny_model_dir):
    weights = {k: trained_weights(tmp_path / k, tiny_model_dir, epochs=2, linear_kernel=k) for k in ("blas", "onednn")}
    assert weights["blas"].keys() == weights["onednn"].keys()
    for name, blas in weights["blas"].items():
        torch.testing.assert_close(weights["onednn"][name], blas, atol=1e-4, rtol=1e-3, msg=name)


@needs_onednn
def test_the_torch_backend_embeds_the_same_on_either_kernel(tiny_model_dir):
    from tunerflow.artifact import load_model
    from tunerflow.inference.torch_backend import TorchBackend

    backend = TorchBackend(load_model(tiny_model_dir))
    texts = ["how do i learn python ?", "guitar", "what is the best way to learn the guitar fast"]
    embedded = {}
    for kernel in (LinearKernel.BLAS, LinearKernel.ONEDNN):
        backend.linear_kernel = kernel
        embedded[kernel] = backend.embed(texts)
        assert backend.runtime()["linear_kernel"] == kernel.value
    torch.testing.assert_close(
        torch.from_numpy(embedded[LinearKernel.ONEDNN]),
        torch.from_numpy(embedded[LinearKernel.BLAS]),
        atol=1e-5,
        rtol=1e-5,
    )


@needs_onednn
def test_calls_onednn_does_not_take_go_to_torch_as_they_are():
    import torch.nn.functional as F

    x, weight = torch.randn(3, 4), torch.randn(2, 4)
    with linear_kernel(LinearKernel.ONEDNN):
        by_keyword = F.linear(input=x, weight=weight)  # keywords, as F.linear's own names
        in_double = F.linear(x.double(), weight.double())  # not float32: torch's own
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast entered inside the block
            autocast = F.linear(x, weight)
    torch.testing.assert_close(by_keyword, x @ weight.T, atol=1e-5, rtol=1e-5)
    assert in_double.dtype == torch.float64 and autocast.dtype == torch.bfloat16


def test_a_roberta_takes_its_looked_up_vectors():
    from transformers import RobertaConfig, RobertaModel

    from tunerflow.modeling.embedding_model import EmbeddingModel
    from tunerflow.options import Pooling
    from tunerflow.training.step_forward import StepForward

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=40, pad_token_id=1,
    )  # fmt: skip
    model = EmbeddingModel(RobertaModel(config, add_pooling_layer=False), Pooling.MEAN)
    assert StepForward(model).one_lookup  # its padding id moves positions on the ids path only: the probe avoids it


@needs_onednn
def test_linear_layers_in_the_block_run_on_onednn_and_others_do_not(monkeypatch):
    import tunerflow.inference.cpu_linear as cpu_linear

    calls = []
    onednn = cpu_linear._onednn_linear
    monkeypatch.setattr(cpu_linear, "_onednn_linear", lambda *args: calls.append(1) or onednn(*args))
    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4, requires_grad=True)
    with linear_kernel(LinearKernel.ONEDNN):
        output = layer(x)
    assert len(calls) == 1  # the forward
    output.sum().backward()
    assert len(calls) == 3  # and the two gradients' products
    with torch.no_grad(), linear_kernel(LinearKernel.ONEDNN):
        layer(x)
    assert len(calls) == 4  # inference too
    with linear_kernel(LinearKernel.BLAS):
        layer(x)
    assert len(calls) == 4
