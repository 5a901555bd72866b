"""Dropout from 16-bit random words: torch's dropout in distribution, gradient and attention, and where it runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import tunerflow.training.cpu_dropout as cpu_dropout
from tests.training_helpers import trained_weights
from tunerflow.errors import ConfigError
from tunerflow.options import DropoutKernel
from tunerflow.training.cpu_dropout import (
    bits_dropout,
    choose_dropout_kernel,
    dropout_kernel,
    keep_mask,
    keep_words,
    kept_scale,
    math_attention,
)

CPU = torch.device("cpu")


def no_dropout(x, p, training):
    return x


def test_every_word_of_a_draw_drops_with_probability_p():
    torch.manual_seed(0)
    n, p = 4_000_000, 0.1
    keep = keep_mask((n,), p).view(-1, 4)  # the four 16-bit words of each 64-bit draw
    dropped = 1.0 - keep.float().mean(0)
    sigma = (p * (1 - p) / (n / 4)) ** 0.5
    assert torch.all((dropped - round(p * 65536) / 65536).abs() < 5 * sigma), dropped  # the top word too
    assert keep_mask((3, 5, 7), 0.5).shape == (3, 5, 7)


@pytest.mark.parametrize("p", [1 / 65536, 0.1, 0.25, 0.5, 0.9])
def test_exactly_round_p_words_of_65536_drop_and_the_scale_undoes_the_rest(p):
    every_word = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    kept = int(keep_words(every_word, p).sum())
    assert kept == 65536 - round(p * 65536)
    assert kept_scale(p) * kept / 65536 == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError):
        kept_scale(1.0)  # nothing kept: bits_dropout answers zeros itself


def test_kept_values_are_scaled_dropped_ones_zero_and_the_mean_is_kept():
    torch.manual_seed(1)
    x = torch.rand(1000, 400) + 1.0
    y = bits_dropout(x, 0.25)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] * kept_scale(0.25))
    assert kept_scale(0.25) == pytest.approx(4 / 3)
    assert abs(1.0 - kept.float().mean().item() - 0.25) < 0.005
    assert (y.sum() / x.sum()).item() == pytest.approx(1.0, abs=0.01)


def test_the_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(64, 48, requires_grad=True)
    y = bits_dropout(x, 0.1)
    weight = torch.randn(64, 48)
    (y * weight).sum().backward()
    mask = (y != 0).float()
    torch.testing.assert_close(x.grad, weight * mask * kept_scale(0.1))


def test_bits_dropout_is_deterministic_for_a_seed_and_idle_when_not_training():
    x = torch.randn(32, 16, 8)
    torch.manual_seed(3)
    first = bits_dropout(x, 0.1)
    torch.manual_seed(3)
    assert torch.equal(bits_dropout(x, 0.1), first)
    assert bits_dropout(x, 0.1, training=False) is x and bits_dropout(x, 0.0) is x
    assert torch.count_nonzero(bits_dropout(x, 1.0)) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mask", ["none", "bool", "additive"])
def test_the_attention_is_torchs_math_path(dtype, mask):
    torch.manual_seed(4)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=dtype) for _ in range(3))
    masks = {
        "none": None,
        "bool": torch.rand(2, 1, 5, 5) > 0.3,
        "additive": torch.where(torch.rand(2, 1, 1, 5) > 0.3, 0.0, torch.finfo(dtype).min).to(dtype),
    }
    attn_mask = masks[mask]
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask[..., 0] = True  # every query sees a key
    ours = math_attention(q, k, v, attn_mask, 0.1, scale=0.3, dropout=no_dropout)
    with sdpa_kernel(SDPBackend.MATH):  # what torch runs on the CPU with dropout
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=0.3)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)  # bf16 too: in float32 inside, as torch's


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_under_autocast_the_attention_casts_as_autocast_does(dtype):
    torch.manual_seed(5)
    q, k, v = (torch.randn(2, 2, 4, 8, dtype=dtype) for _ in range(3))
    additive = torch.randn(2, 1, 4, 4, dtype=dtype)  # autocast casts a floating mask too
    with torch.autocast("cpu", dtype=torch.bfloat16), sdpa_kernel(SDPBackend.MATH):
        ours = math_attention(q, k, v, additive, 0.1, dropout=no_dropout)
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
    assert ours.dtype == theirs.dtype == (torch.bfloat16 if dtype == torch.float32 else torch.float64)
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_a_query_that_sees_no_key_attends_to_nothing_as_in_torch():
    q, k, v = (torch.randn(1, 2, 3, 4) for _ in range(3))
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, True]])
    additive = torch.zeros(3, 3).masked_fill(~mask, -torch.inf)
    for attn_mask in (mask, additive):
        ours = math_attention(q, k, v, attn_mask, 0.1, dropout=no_dropout)
        with sdpa_kernel(SDPBackend.MATH):
            theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        assert not ours.isnan().any()
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_the_dropout_falls_where_torchs_does():
    torch.manual_seed(8)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    keep = keep_mask((2, 3, 5, 5), 0.25)
    ours = math_attention(q, k, v, None, 0.25, dropout=lambda x, p, t: torch.where(keep, x * kept_scale(p), 0.0))
    theirs, _ = torch.ops.aten._scaled_dot_product_attention_math(q, k, v, None, 0.25, False, keep)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)  # 0.25: both scale by 4/3


def test_the_block_sends_cpu_dropout_and_attention_dropout_to_bits():
    x = torch.randn(16, 32)
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    layer = torch.nn.Dropout(0.2)
    torch.manual_seed(6)
    expected = bits_dropout(x, 0.2)
    expected_attention = math_attention(q, k, v, None, 0.2)
    torch.manual_seed(6)
    with dropout_kernel(DropoutKernel.BITS):
        assert torch.equal(layer(x), expected)  # nn.Dropout goes through F.dropout
        assert torch.equal(F.scaled_dot_product_attention(q, k, v, dropout_p=0.2), expected_attention)
    torch.manual_seed(6)
    with dropout_kernel(DropoutKernel.TORCH):
        assert not torch.equal(layer(x), expected)  # torch's own masks


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_calls_the_bits_path_does_not_take_go_to_torch():
    x = torch.randn(8, 8)
    q, k, v = (torch.randn(1, 2, 4, 4) for _ in range(3))
    nested = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)])
    with dropout_kernel(DropoutKernel.BITS):
        assert F.dropout(nested, 0.5, True).is_nested  # torch's own
        with pytest.raises(RuntimeError):  # torch refuses an integer mask, and so it stays
            F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(4, 4, dtype=torch.int64), dropout_p=0.5)
        torch.manual_seed(7)
        inplace = F.dropout(x.clone(), 0.5, True, inplace=True)
        causal = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, is_causal=True)
        without = F.scaled_dot_product_attention(q, k, v)
    torch.manual_seed(7)
    assert torch.equal(inplace, F.dropout(x.clone(), 0.5, True, inplace=True))
    torch.manual_seed(7)
    F.dropout(x.clone(), 0.5, True, inplace=True)  # replay the draws made before the causal call
    assert torch.equal(causal, F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, is_causal=True))
    assert torch.equal(without, F.scaled_dot_product_attention(q, k, v))


def test_auto_draws_bits_on_the_cpu_only_and_the_setting_wins():
    assert choose_dropout_kernel("auto", CPU) is DropoutKernel.BITS
    assert choose_dropout_kernel("torch", CPU) is DropoutKernel.TORCH
    assert choose_dropout_kernel("bits", torch.device("cuda", 0)) is DropoutKernel.TORCH  # a GPU draws its own
    with pytest.raises(ConfigError, match="dropout_kernel"):
        choose_dropout_kernel("fast", CPU)


def test_runs_train_with_the_chosen_masks_and_repeat_for_a_seed(tmp_path, tiny_model_dir, monkeypatch):
    attention = []  # the model's attention dropout goes through the bits path, not only nn.Dropout
    monkeypatch.setattr(cpu_dropout, "math_attention", lambda *a: attention.append(1) or math_attention(*a))
    runs = {"bits": "bits", "bits-again": "bits", "auto": "auto", "torch": "torch"}
    weights = {
        name: trained_weights(tmp_path / name, tiny_model_dir, epochs=1, dropout_kernel=k) for name, k in runs.items()
    }
    assert attention
    assert all(torch.equal(weights["bits-again"][n], w) for n, w in weights["bits"].items())
    assert all(torch.equal(weights["auto"][n], w) for n, w in weights["bits"].items())  # auto: bits on the CPU
    assert any(not torch.equal(weights["torch"][n], w) for n, w in weights["bits"].items())  # other masks
