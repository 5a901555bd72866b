"""Throughput of one backend across batch shapes: texts per batch against padded tokens per batch.

Not a test. Embeds the same fixed sample of Quora dev texts in-process with each shape, in turn,
``--repeats`` rounds (so drift moves every shape alike); prints sentences/s medians and the ratio
to the first shape. Rates are texts per CPU second of this process (``--threads 1``, the default
here: on a shared machine CPU time moves far less with the load than wall time; ``--clock wall`` on a
quiet machine, where every thread's spinning would count as CPU time). A shape is ``B``
(at most B texts, no token limit) or ``B/T`` (at most B texts and T padded tokens per forward pass).
The result picks ``DEFAULT_MAX_TOKENS``.

    .venv/bin/python bench/token_budget.py --backend torch --texts 1024 --shapes 32 128 4096/1024 4096/4096
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
from serving_profile import sample_texts  # noqa: E402


def parse_shape(shape: str) -> tuple[int, int | None]:
    texts, _, tokens = shape.partition("/")
    return int(texts), int(tokens) if tokens else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="cpu: this process's CPU time")
    parser.add_argument(
        "--shapes", nargs="+", default=["32", "128", "4096/1024", "4096/2048", "4096/4096", "4096/8192"]
    )
    args = parser.parse_args()

    from tunerflow import get_model

    model = get_model("all-MiniLM-L6-v2", backend=args.backend, dtype=args.dtype, threads=args.threads)
    texts = sample_texts(args.texts, seed=1)
    shapes = [parse_shape(shape) for shape in args.shapes]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    seconds = {shape: [] for shape in shapes}
    for round_ in range(args.repeats + 1):
        for batch_size, max_tokens in shapes:
            model.max_tokens = max_tokens
            started = clock()
            model.embed(texts, batch_size=batch_size)
            if round_:  # the first round warms up
                seconds[(batch_size, max_tokens)].append(clock() - started)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps({"machine": machine(), "loadavg": [load_before, load_after], "args": vars(args)}))
    first = None
    print(f"| batch_size | max_tokens | sentences per {args.clock} s (median) | min-max | ratio |")
    print("|---|---|---|---|---|")
    for (batch_size, max_tokens), values in seconds.items():
        rates = [len(texts) / value for value in values]
        median = statistics.median(rates)
        first = first or median
        print(
            f"| {batch_size} | {max_tokens or '-'} | {median:.0f} | {min(rates):.0f}-{max(rates):.0f} | "
            f"{median / first:.2f} |"
        )


if __name__ == "__main__":
    main()
