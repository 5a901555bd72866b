"""Dropout on the CPU with masks cut from 16-bit random words: torch's dropout, at a third of its cost.

torch's CPU dropout draws its mask with ``bernoulli_``: one draw of its Mersenne Twister per element,
in one thread, about 5 ns an element (2.0 ms for a 32 x 30 x 384 activation on the 2-core AMX Xeon of
bench/RESULTS.md, "On a CPU with AMX, again"). A training step of the bundled model draws 76 masks (4 length
chunks x 19 dropouts: the embeddings', and in each of 6 layers the attention probabilities', the attention
output's and the feed-forward output's): about a sixth of the step. Here the mask comes from 64-bit draws
of the same generator (``random_`` over the whole int64 range), each cut into four 16-bit words; an
element is kept where its word is at least ``t = round(p * 65536)`` (counted from the smallest word), so
it is dropped with probability ``t / 65536`` (``p`` to within 1/131,072) and the kept ones are scaled
by ``65536 / (65536 - t)``, which keeps the expectation exact. 0.7 ms for the same activation.

``dropout_kernel(DropoutKernel.BITS)`` routes ``torch.nn.functional.dropout`` (``nn.Dropout`` calls it)
and the dropout of ``torch.nn.functional.scaled_dot_product_attention`` through it for the length of a
``with`` block: dense floating-point CPU tensors only; anything else (a GPU tensor, ``inplace``, causal
or grouped-query attention) goes to torch as it was. The attention is torch's own math path (what it
runs on the CPU with dropout): the product of query and key scaled by the square root of ``scale`` on
each side, the mask added, softmax (zeros for a query whose every key is masked), dropout, the product
with value, in float32 for bf16 and fp16 inputs (under autocast, after autocast's own cast of the
arguments, the mask's included), and the result in the inputs' dtype. Deterministic for a seed
(``torch.manual_seed``), as torch's is; the masks differ from torch's.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from tunerflow.options import DropoutKernel, parse_enum

WORD = 1 << 16  # a mask element's random word has 16 bits
LOWEST = -(1 << 15)  # the smallest signed 16-bit word
REDUCED = (torch.bfloat16, torch.float16)  # attention in float32 for these, as torch's math path does


def choose_dropout_kernel(setting: str | DropoutKernel, device: torch.device) -> DropoutKernel:
    """What draws dropout masks when training on ``device``: ``auto`` is ``bits`` on the CPU, torch's elsewhere
    (a GPU draws its masks in parallel)."""
    kernel = parse_enum(DropoutKernel, setting, "dropout_kernel")
    if device.type != "cpu":
        return DropoutKernel.TORCH
    return DropoutKernel.BITS if kernel == DropoutKernel.AUTO else kernel


def dropped_words(p: float) -> int:
    """How many of the 65,536 16-bit words drop their element: ``round(p * 65536)``, some kept."""
    dropped = round(p * WORD)
    if not 0 <= dropped < WORD:
        raise ValueError(f"dropout probability {p} must be at least 0 and keep something")
    return dropped


def keep_words(words: torch.Tensor, p: float) -> torch.Tensor:
    """Which of the int16 ``words`` keep their element: all but the ``dropped_words(p)`` smallest values."""
    return words >= LOWEST + dropped_words(p)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | None = None) -> torch.Tensor:
    """A bool tensor of ``shape``, each element False with probability ``round(p * 65536) / 65536``."""
    count = math.prod(shape)
    draws = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    draws.random_(-(1 << 63), None)  # the whole int64 range: all 64 bits random (random_() alone leaves the top one 0)
    return keep_words(draws.view(torch.int16)[:count].view(shape), p)


def kept_scale(p: float) -> float:
    """What kept elements are multiplied by: 1 / the probability of keeping one, as :func:`keep_mask` draws it."""
    return WORD / (WORD - dropped_words(p))


def bits_dropout(input: torch.Tensor, p: float = 0.5, training: bool = True) -> torch.Tensor:  # noqa: A002
    """``F.dropout(input, p, training)`` with a :func:`keep_mask`."""
    if not training or p == 0.0:
        return input
    if round(p * WORD) >= WORD:  # nothing kept
        return input * 0.0
    keep = keep_mask(input.shape, p, input.device)
    return torch.where(keep, input * kept_scale(p), 0.0)


def _autocast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``tensor`` as autocast casts the arguments of a lower-precision op: floating point but float64, to ``dtype``."""
    usable = tensor is not None and tensor.is_floating_point() and tensor.dtype != torch.float64
    return tensor.to(dtype) if usable else tensor


def math_attention(query, key, value, attn_mask=None, dropout_p=0.0, scale=None, dropout=bits_dropout):
    """Scaled dot-product attention as torch's math path computes it, with ``dropout`` on the probabilities."""
    if torch.is_autocast_enabled("cpu"):  # autocast casts the arguments, then the math runs without it
        low = torch.get_autocast_dtype("cpu")
        query, key, value, attn_mask = (_autocast(t, low) for t in (query, key, value, attn_mask))
    dtype = query.dtype
    with torch.autocast("cpu", enabled=False):
        if dtype in REDUCED:
            query, key, value = query.float(), key.float(), value.float()
        factor = math.sqrt(1.0 / math.sqrt(query.shape[-1]) if scale is None else scale)
        scores = torch.matmul(query * factor, key.transpose(-2, -1) * factor)
        unseen = None  # the queries whose every key is masked, read off the mask (no head axis: small)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                unseen = ~attn_mask.any(-1, keepdim=True)
                attn_mask = torch.zeros_like(attn_mask, dtype=scores.dtype).masked_fill(~attn_mask, -math.inf)
            else:
                unseen = attn_mask.isneginf().all(-1, keepdim=True)
            scores = scores + attn_mask
        probabilities = torch.softmax(scores, dim=-1)
        if unseen is not None and bool(unseen.any()):  # they attend to nothing: 0, as torch's, not NaN
            probabilities = probabilities.masked_fill(unseen, 0.0)
        probabilities = dropout(probabilities, dropout_p, True)
        return torch.matmul(probabilities, value).to(dtype)


def _dense_cpu(tensor) -> bool:
    """Whether ``tensor`` is a dense (strided, not nested) tensor on the CPU."""
    return (
        isinstance(tensor, torch.Tensor)
        and tensor.device.type == "cpu"
        and tensor.layout == torch.strided
        and not tensor.is_nested
    )


def _takes(tensors: list) -> bool:
    """Whether the bits path handles these tensors (dense floating point on the CPU)."""
    return all(_dense_cpu(t) and t.is_floating_point() for t in tensors)


def _dropout_call(input=None, p=0.5, training=True, inplace=False):  # noqa: A002 (F.dropout's own names)
    """``F.dropout``'s arguments when the bits path takes them; None otherwise."""
    return (input, p, training) if not inplace and _takes([input]) and 0.0 <= p <= 1.0 else None


def _attention_call(
    query=None, key=None, value=None, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    """``F.scaled_dot_product_attention``'s arguments when there is dropout to draw and the math path takes
    them; None otherwise."""
    usable = (
        dropout_p > 0.0
        and not is_causal
        and not enable_gqa
        and _takes([query, key, value])
        and query.dtype == key.dtype == value.dtype
        and (
            attn_mask is None
            or (_dense_cpu(attn_mask) and (attn_mask.dtype == torch.bool or attn_mask.is_floating_point()))
        )
    )
    return (query, key, value, attn_mask, dropout_p, scale) if usable else None


class _BitsDropoutMode(TorchFunctionMode):
    """Sends CPU dropout (``F.dropout``, and the dropout of ``F.scaled_dot_product_attention``) to the bits path."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            call = _dropout_call(*args, **kwargs)
            if call is not None:
                return bits_dropout(*call)
        elif func is F.scaled_dot_product_attention:
            call = _attention_call(*args, **kwargs)
            if call is not None:
                return math_attention(*call)
        return func(*args, **kwargs)


def dropout_kernel(kernel: DropoutKernel) -> AbstractContextManager:
    """A ``with`` block in which dropout on the CPU draws its masks as ``kernel`` says (``bits``: this module's)."""
    return _BitsDropoutMode() if kernel == DropoutKernel.BITS else nullcontext()
