"""Where ONNX Runtime spends its time encoding Quora dev texts, by operator type (fp32 and int8).

Runs the bundled model's ONNX graphs (exported into the cache on first use)
with ONNX Runtime's profiler over a fixed sample of dev texts, length-sorted
batches of 32, and prints each graph's kernel time and its largest operator
types.

    .venv/bin/python bench/profile_onnx.py --texts 2000
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import quora_dev  # noqa: E402


def profile(path: Path, tokenizer, texts: list[str], batch_size: int) -> collections.Counter:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, return_tensors="np")
        feeds = {name: batch[name].astype("int64") for name in ("input_ids", "attention_mask")}
        session.run(None, feeds)
    by_op: collections.Counter = collections.Counter()
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    return by_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    from tunerflow.inference.factory import open_backend

    queries, index = quora_dev()
    texts = [q["text"] for q in queries] + [r["text"] for r in index]
    chosen = np.random.default_rng(0).choice(len(texts), size=min(args.texts, len(texts)), replace=False)
    sample = sorted((texts[i] for i in chosen), key=len)
    for backend in ("onnx", "onnx-int8"):
        model = open_backend(backend=backend)
        by_op = profile(model.path, model.tokenizer, sample, args.batch_size)
        total = sum(by_op.values())
        print(f"{model.path.name}: kernel time {total / 1e6:.2f} s for {len(sample)} texts")
        for op, microseconds in by_op.most_common(8):
            print(f"  {op:28s} {100 * microseconds / total:5.1f} %")


if __name__ == "__main__":
    main()
