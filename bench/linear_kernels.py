"""float32 matrix products of the bundled model's linear layers: torch's BLAS (MKL) against oneDNN.

For each shape (rows = texts x tokens of a length chunk; the layer's in and out features) it times
the three products of a linear layer in training, each the median of ``--repeats`` calls after a
warm-up: forward (``x @ W.T``), the input's gradient (``g @ W``) and the weight's (``g.T @ x``),
through ``torch.nn.functional.linear`` and ``torch.matmul`` (BLAS) and through
``tunerflow.inference.cpu_linear`` (oneDNN), and prints GFLOP/s. The machine's flags and vendor
go with every row (``linear_kernel: auto`` decides by the vendor).

    PYTHONPATH=src:bench .venv/bin/python bench/linear_kernels.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

SHAPES = [(1600, 384, 1536), (1600, 1536, 384), (1600, 384, 384), (448, 384, 1536)]  # MiniLM-L6's layers


def median_seconds(call, repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def products(x, weight, grad) -> dict:
    """The three products of a linear layer in training, each as (torch's BLAS, oneDNN) calls."""
    import torch.nn.functional as F

    from tunerflow.inference.cpu_linear import _onednn_linear

    return {
        "forward": (lambda: F.linear(x, weight), lambda: _onednn_linear(x, weight, None)),
        "grad input": (lambda: grad @ weight, lambda: _onednn_linear(grad, weight.t(), None)),
        "grad weight": (lambda: grad.t() @ x, lambda: _onednn_linear(grad.t(), x.t(), None)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import torch

    from tunerflow.inference.cpu import cpu_features
    from tunerflow.inference.cpu_linear import default_linear_kernel, onednn_linear_works

    torch.set_num_threads(args.threads)
    if not onednn_linear_works():
        raise SystemExit("this torch has no working oneDNN linear op")
    info = {**machine(), "vendor": cpu_features().vendor, "auto": default_linear_kernel(torch.device("cpu")).value}
    print(json.dumps({"machine": info, "command": " ".join(["bench/linear_kernels.py", *sys.argv[1:]])}))
    generator = torch.Generator().manual_seed(0)
    for rows, inputs, outputs in SHAPES:
        x = torch.randn(rows, inputs, generator=generator)
        weight = torch.randn(outputs, inputs, generator=generator)
        grad = torch.randn(rows, outputs, generator=generator)
        flops = 2 * rows * inputs * outputs
        for name, (blas, onednn) in products(x, weight, grad).items():
            torch.testing.assert_close(onednn(), blas(), atol=1e-2, rtol=1e-3)
            gflops = {
                kernel: round(flops / median_seconds(call, args.repeats) / 1e9, 1)
                for kernel, call in (("blas", blas), ("onednn", onednn))
            }
            ratio = round(gflops["onednn"] / gflops["blas"], 2)
            print(json.dumps({"shape": [rows, inputs, outputs], "product": name, "gflops": gflops, "onednn_x": ratio}))


if __name__ == "__main__":
    main()
