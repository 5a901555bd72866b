"""The CPU's vector and matrix features, read once, and the precision ``dtype: auto`` picks from them.

bf16 pays only where the CPU computes in bf16 itself (AVX512-BF16 or AMX tiles); elsewhere PyTorch
emulates it and it is slower than float32 (OpenVINO runs float32 instead), so ``auto`` means bfloat16
there and float32 everywhere else. The decision is a pure function of the flags, so it is the same for
the same machine.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

from tunerflow.options import Backend, DType, parse_enum

FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class CpuFeatures:
    """What this CPU offers the inference backends.

    Attributes:
        flags: the features of :data:`FEATURES` this CPU has (from ``/proc/cpuinfo``).
        torch_capability: PyTorch's own verdict (``torch.backends.cpu.get_cpu_capability()``:
            ``DEFAULT``, ``AVX2``, ``AVX512`` ...), None where it cannot say.
        model: the CPU's model name.
        vendor: its ``vendor_id`` (``GenuineIntel``, ``AuthenticAMD`` ...): MKL's fastest kernels are
            Intel's only (:mod:`tunerflow.inference.cpu_linear`).
    """

    flags: frozenset[str]
    torch_capability: str | None = None
    model: str = "unknown"
    vendor: str = "unknown"

    @property
    def bf16(self) -> bool:
        """Whether the CPU computes in bf16 natively (AVX512-BF16 or AMX)."""
        return bool(self.flags & BF16_FLAGS)

    def to_dict(self) -> dict:
        return {**asdict(self), "flags": sorted(self.flags), "bf16": self.bf16}


def parse_cpuinfo(text: str) -> tuple[frozenset[str], str]:
    """The :data:`FEATURES` in a ``/proc/cpuinfo`` text (its first ``flags`` line) and the model name."""
    flags, model, _ = parse_cpuinfo_vendor(text)
    return flags, model


def parse_cpuinfo_vendor(text: str) -> tuple[frozenset[str], str, str]:
    """:func:`parse_cpuinfo`'s flags and model name, and the ``vendor_id``."""
    flags: frozenset[str] = frozenset()
    model = vendor = "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = frozenset(value.split()) & frozenset(FEATURES)
        elif key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "vendor_id" and vendor == "unknown":
            vendor = value.strip()
    return flags, model, vendor


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's :class:`CpuFeatures`, detected once per process."""
    try:
        flags, model, vendor = parse_cpuinfo_vendor(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: no flags, so ``auto`` stays on float32
        flags, model, vendor = frozenset(), "unknown", "unknown"
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        capability = None
    return CpuFeatures(flags, capability, model, vendor)


def choose_dtype(dtype: str | DType, backend: str | Backend, features: CpuFeatures, device: str = "cpu") -> DType:
    """The precision to run: an explicit ``dtype`` as given; ``auto`` is bfloat16 for the torch and
    openvino backends on the CPU when it has native bf16, else float32 (the onnx backends and the int8
    graphs carry their own precision; on a GPU ``auto`` stays float32: choose bfloat16 there explicitly)."""
    dtype = parse_enum(DType, dtype, "dtype")
    if dtype is not DType.AUTO:
        return dtype
    on_cpu = str(device).partition(":")[0] == "cpu"
    if on_cpu and parse_enum(Backend, backend, "backend").takes_dtype and features.bf16:
        return DType.BFLOAT16
    return DType.FLOAT32
