"""float32 linear layers through oneDNN on CPUs where torch's BLAS takes its slow path.

torch's CPU wheels multiply float32 matrices with MKL, whose AVX-512 kernels run only on Intel
CPUs. On an AMD EPYC (Zen 5, AVX-512, 2 cores) MKL's sgemm ran the model's shapes at 210-237
GFLOP/s and oneDNN, in the same wheel, at 490-505 forward and 330-505 for the two gradients
(bench/RESULTS.md, "Training on Zen 5"). :func:`linear_kernel` routes ``torch.nn.functional.linear``
through oneDNN (``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiler emits for a
linear layer on the CPU) for the length of a ``with`` block, forward and backward: the same
float32 arithmetic, to rounding.

``auto`` picks oneDNN on AMD (and Hygon) x86 CPUs when the op is there and agrees with
``F.linear`` on a probe; MKL (torch's default) on Intel CPUs, everywhere else, and under autocast
(bf16 and fp16 already run on oneDNN).
"""

from __future__ import annotations

import functools
import logging
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from tunerflow.inference.cpu import CpuFeatures, cpu_features
from tunerflow.options import LinearKernel, parse_enum

log = logging.getLogger(__name__)

# x86 CPUs on which MKL runs its generic kernels (measured on AMD EPYC Zen 5; Hygon's are AMD Zen cores).
MKL_SLOW_VENDORS = ("AuthenticAMD", "HygonGenuine")


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN; ``x`` and ``weight`` 2-D (strided views are fine)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.lru_cache(maxsize=1)
def onednn_linear_works() -> bool:
    """Whether this torch has the oneDNN linear op and it gives ``F.linear``'s result (checked once)."""
    try:
        generator = torch.Generator().manual_seed(0)
        x, weight = torch.randn(5, 7, generator=generator), torch.randn(3, 7, generator=generator)
        bias = torch.randn(3, generator=generator)
        return bool(torch.allclose(_onednn_linear(x, weight, bias), F.linear(x, weight, bias), atol=1e-5))
    except (AttributeError, RuntimeError, TypeError):  # a build without oneDNN, or the op changed
        return False


def choose_linear_kernel(setting: str | LinearKernel, features: CpuFeatures, device: torch.device) -> LinearKernel:
    """The kernel float32 linear layers use on ``device``: ``setting``, with ``auto`` decided by the CPU.

    A pure function of the setting, the CPU's vendor and the device, besides whether the op works.
    """
    kernel = parse_enum(LinearKernel, setting, "linear_kernel")
    if device.type != "cpu":
        return LinearKernel.BLAS
    if kernel == LinearKernel.AUTO:
        kernel = LinearKernel.ONEDNN if features.vendor in MKL_SLOW_VENDORS else LinearKernel.BLAS
    if kernel == LinearKernel.ONEDNN and not onednn_linear_works():
        log.warning("linear_kernel onednn: this torch has no working oneDNN linear op; using its BLAS")
        return LinearKernel.BLAS
    return kernel


class _OneDnnLinear(torch.autograd.Function):
    """``F.linear`` whose product and both gradients' products run on oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # grad @ weight
            grad_x = _onednn_linear(rows, weight.t(), None).view(x.shape)
        if ctx.needs_input_grad[1]:  # grad.T @ x
            grad_weight = _onednn_linear(rows.t(), x.reshape(-1, x.shape[-1]).t(), None)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        return grad_x, grad_weight, grad_bias


def _operands(input=None, weight=None, bias=None) -> tuple | None:  # noqa: A002 (F.linear's own names)
    """A call of ``F.linear``'s ``(input, weight, bias)`` when oneDNN's op takes them as they are (dense float32
    on the CPU, outside autocast); None otherwise."""
    tensors = [t for t in (input, weight, bias) if t is not None]
    takes = (
        isinstance(input, torch.Tensor)
        and isinstance(weight, torch.Tensor)
        and (bias is None or isinstance(bias, torch.Tensor))
        and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.layout == torch.strided for t in tensors)
        and input.dim() >= 1
        and weight.dim() == 2
        and (bias is None or bias.dim() == 1)
        and not torch.is_autocast_enabled("cpu")
    )
    return (input, weight, bias) if takes else None


class _OneDnnLinearMode(TorchFunctionMode):
    """Sends dense float32 CPU calls of ``F.linear`` outside autocast to :class:`_OneDnnLinear` (checked at
    every call); every other call as it was."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        operands = _operands(*args, **kwargs) if func is F.linear else None
        if operands is not None:
            return _OneDnnLinear.apply(*operands)  # without grad (inference) it records no graph
        return func(*args, **kwargs)


def linear_kernel(kernel: LinearKernel) -> AbstractContextManager:
    """A ``with`` block in which float32 linear layers run on ``kernel`` (oneDNN, or torch's BLAS as always).

    Calls under autocast are left to it (its dtypes already run on oneDNN), also when autocast is entered
    inside the block.
    """
    if kernel != LinearKernel.ONEDNN or torch.is_autocast_enabled("cpu"):
        return nullcontext()
    return _OneDnnLinearMode()


def default_linear_kernel(device: torch.device) -> LinearKernel:
    """``auto``'s choice on this machine for ``device``."""
    return choose_linear_kernel(LinearKernel.AUTO, cpu_features(), device)
