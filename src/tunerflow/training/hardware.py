"""Training options left to ``auto`` that depend on the machine, not the data: the training precision.

``precision: auto`` trains in bf16 (autocast, float32 master weights) on a CPU with AMX bf16 tiles, and
in float32 everywhere else. On the 2-core AMX Xeon of bench/RESULTS.md ("Training precision on AMX")
bf16 steps of the default recipe ran 1.4x as fast as float32 ones (1.6-1.7x in the runs' training
seconds) at the same average precision after an epoch (within 0.0001 on Banking77 and WikiAnswers, 4
seeds); without AMX, PyTorch either emulates bf16 (slower than float32) or, with AVX512-BF16 alone, has
not been measured training here. The flag alone is not enough: PyTorch must be able to use the tiles
too (a kernel or hypervisor that does not grant the tiles' state leaves the flag in ``/proc/cpuinfo``
and bf16 emulated), so ``auto`` asks it (:func:`torch_uses_amx`). On a GPU ``auto`` stays float32, as
the encoder's ``dtype: auto`` does: choose bf16 there explicitly. A pure function of the setting, the
CPU's flags, PyTorch's answer and the device, so the same machine always makes the same choice; the run
records the choice, so a resumed run keeps it.
"""

from __future__ import annotations

import torch

from tunerflow.inference.cpu import CpuFeatures
from tunerflow.options import Precision, parse_enum
from tunerflow.training.data_defaults import Choice

TRAINING_BF16_FLAGS = frozenset({"amx_bf16"})  # where bf16 training was measured faster than float32


def torch_uses_amx() -> bool:
    """Whether this PyTorch can run AMX tiles here (it asks the kernel for their state; False if it cannot say)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(
    setting: str | Precision, features: CpuFeatures, device: torch.device, amx_usable: bool = True
) -> Choice:
    """The precision a run trains in, with its reason; an explicit ``setting`` is kept as it is.

    ``amx_usable``: PyTorch can use the AMX tiles the flags show (:func:`torch_uses_amx`).
    """
    precision = parse_enum(Precision, setting, "precision")
    if precision is not Precision.AUTO:
        return Choice("precision", precision.value, precision.value, "set")
    if device.type != "cpu":
        return Choice("precision", Precision.FP32.value, "auto", f"auto: float32 on {device.type}; choose bf16 there")
    if not features.flags & TRAINING_BF16_FLAGS:
        return Choice("precision", Precision.FP32.value, "auto", "auto: no AMX bf16 tiles on this CPU")
    if not amx_usable:
        why = "auto: the CPU shows AMX bf16 tiles but PyTorch cannot use them here (bf16 would be emulated)"
        return Choice("precision", Precision.FP32.value, "auto", why)
    why = "auto: this CPU has AMX bf16 tiles; bf16 trained 1.4-1.7x as fast as float32 at the same quality"
    return Choice("precision", Precision.BF16.value, "auto", f"{why} (bench/RESULTS.md, issue 14)")
