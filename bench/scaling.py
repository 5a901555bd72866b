"""Training docs/s on 1 vs N processes (``devices``), through the tuner's own run path (torchrun for N > 1).

Each side is one run of a RunManager: the recipe's texts (whole Quora clusters,
``--steps`` batches) for one epoch without evaluation; docs/s is the run's own
last progress figure (texts trained / training seconds, evaluation and start-up
left out). Prints one JSON object.

    python bench/scaling.py --model all-MiniLM-L6-v2 --device cpu --devices 1 2      # CPU, gloo
    python bench/scaling.py --tokenizer .gpu/tokenizer --device cuda --devices 1 auto  # GPUs, NCCL
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model to train (default: a random BERT-base, needs --tokenizer)")
    parser.add_argument("--tokenizer", type=Path, help="the bundled model's tokenizer, for the random BERT-base")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--devices", nargs="+", default=["1", "2"], help="process counts to compare (or auto)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    from common import QUORA, TRIPLET, machine, read_jsonl
    from gpu import bert_base_dir
    from tunerflow.data import make_record
    from tunerflow.data.sampler import whole_clusters
    from tunerflow.runs import RunManager
    from tunerflow.settings import section

    model = args.model or str(bert_base_dir(args.tokenizer))
    rows = whole_clusters(read_jsonl(QUORA / "train.jsonl.gz"), args.steps * args.batch_size, lambda r: r["label"])
    home = Path(tempfile.mkdtemp(prefix="scaling-"))
    manager = RunManager(home, section("recipe"))
    manager.append("train", [make_record(r["text"], r["label"], str(i), "quora") for i, r in enumerate(rows)])
    cuda = args.device.startswith("cuda")
    sides = []
    try:
        for devices in [int(d) if d.isdigit() else d for d in args.devices]:
            options = {"train_data": "train", "model": model, "device": args.device, "devices": devices,
                       "precision": "bf16" if cuda else "fp32", "epochs": 1, "batch_size": args.batch_size,
                       "num_items_per_class": 4, "max_length": 64, "learning_rate": 1e-5, **TRIPLET}  # fmt: skip
            started = time.monotonic()
            name = manager.start(options).run_name
            manager.wait_idle()
            record = manager.get(name)
            if record.status.value != "FINISHED":
                raise SystemExit(f"devices {devices}: {record.status.value}: {record.details}")
            sides.append(
                {
                    "devices": devices,
                    "steps": record.metrics["steps"],
                    "docs_per_second": record.progress["docs_per_second"],
                    "run_seconds_with_start_up": round(time.monotonic() - started, 1),
                }
            )
    finally:
        manager.close()
    base = sides[0]["docs_per_second"]
    for side in sides:
        side["speed_up"] = round(side["docs_per_second"] / base, 2) if base else None
    print(
        json.dumps(
            {"machine": machine(), "model": model, "device": args.device, "train_texts": len(rows), "sides": sides},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
