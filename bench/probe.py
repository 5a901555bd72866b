"""What the probe reads: the starting model's average precision on labels held out of a training set.

The same slice and measurement as a run with ``probe: true`` (tunerflow.runs.probe), on the training texts
bench/choose_defaults.py trains on (the same --train-docs and --per-label), without training anything.

    PYTHONPATH=src:bench .venv/bin/python bench/probe.py --data data/quora data/wikianswers data/banking77 \
        --train-docs 117001 15000 15000 --out bench/results/probe-issue13.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from common import append_result, machine  # bench/ is on sys.path when this script runs
from tunerflow.artifact import load_model
from tunerflow.artifact.open import load_tokenizer
from tunerflow.data import read_jsonl, whole_clusters
from tunerflow.data.store import DatasetStore
from tunerflow.inference.torch_backend import TorchBackend
from tunerflow.modeling.sources import resolve_source
from tunerflow.options import DType
from tunerflow.runs.data_aware import measure
from tunerflow.runs.probe import KNOWN_AP, run_probe
from tunerflow.settings import section
from tunerflow.training.data_defaults import choose
from tunerflow.training.recipe import Recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--train-docs", type=int, nargs="+", required=True, help="one per --data")
    parser.add_argument("--per-label", type=int, default=None, help="at most this many texts of each label")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args()
    if len(args.train_docs) != len(args.data):
        parser.error("give one --train-docs per --data")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipe = Recipe.from_options(section("recipe"), {"train_data": "train"})
    for data, train_docs in zip(args.data, args.train_docs, strict=True):
        records = list(read_jsonl(data / "train.jsonl.gz"))
        if args.per_label:
            seen: Counter = Counter()
            records = [r for r in records if (seen.update([r.label]) or seen[r.label] <= args.per_label)]
        train = whole_clusters(records, train_docs, label=lambda r: r.label, seed=0)
        store = DatasetStore(Path(tempfile.mkdtemp(prefix="tunerflow-probe-")))
        store.append("train", train)
        dataset = store.get("train")
        counts = np.array(list(Counter(r.label for r in train).values()))
        tokenizer, model_max = load_tokenizer(resolve_source(recipe.model))  # what a run's data-aware choice reads
        stats = measure(dataset, tokenizer, model_max, recipe.seed)
        chosen = choose(stats, recipe.to_dict(), (), evaluated=True, model_max_length=model_max)
        max_length = next(c.value for c in chosen if c.option == "max_length")  # a run's data-aware max_length
        loaded = load_model(recipe.model, pooling=recipe.pooling, max_length=max_length)
        backend = TorchBackend(loaded, dtype=DType(args.dtype), batch_size=recipe.eval_batch_size)
        started = time.monotonic()
        keep = np.ones(len(dataset), dtype=bool)
        result = run_probe(recipe, dataset, keep, backend.embed, logging.getLogger("probe"))
        row = {
            "data": data.name,
            "command": " ".join(["python", *sys.argv]),
            "machine": machine(),
            "train_docs": len(train),
            "labels": len(counts),
            "pair_share": round(float((counts == 2).mean()), 4),
            "dtype": args.dtype,
            "max_length": max_length,
            "probe": result.to_dict() if result else None,
            "known": bool(result and result.before >= KNOWN_AP),
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(row), flush=True)
        if args.out:
            append_result(args.out, row)


if __name__ == "__main__":
    main()
