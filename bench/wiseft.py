"""WiSE-FT measured on a finished run: its artifact's weights averaged with the starting model's.

A run with ``wiseft_alpha`` publishes ``alpha * tuned + (1 - alpha) * starting`` weights (the
kept epoch's, tunerflow.training.weights.interpolate_weights). This script does the same
averaging for several alphas on one artifact and scores each on a data set's dev split, so one
training run gives the whole curve (alpha 1 is the artifact, alpha 0 the starting model).

    PYTHONPATH=src:bench .venv/bin/python bench/wiseft.py --artifact HOME/artifacts/RUN --data data/banking77 \
        --alphas 0 0.25 0.5 0.75 1 --out bench/results/wiseft-banking77.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import append_result, machine  # bench/ is on sys.path when this script runs
from tunerflow.artifact import load_model
from tunerflow.data import read_jsonl
from tunerflow.evaluation.evaluator import EvaluationSet, evaluate
from tunerflow.inference.torch_backend import TorchBackend
from tunerflow.training.weights import interpolate_weights, weights_copy

SHOWN = ("model_average_precision", "model_reciprocal_rank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True, help="a finished run's artifact directory")
    parser.add_argument("--start", default=None, help="the starting model (default: the artifact's base model)")
    parser.add_argument("--data", type=Path, default=Path("data/banking77"))
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    meta = json.loads((args.artifact / "run.json").read_text()) if (args.artifact / "run.json").exists() else {}
    recipe = meta.get("recipe", {})
    start_name = args.start or recipe.get("model") or "all-MiniLM-L6-v2"
    tuned = load_model(args.artifact)
    max_length = tuned.spec.max_length
    start = weights_copy(load_model(start_name, max_length=max_length).model)
    tuned_weights = weights_copy(tuned.model)
    queries = list(read_jsonl(args.data / "query_dev.jsonl.gz"))
    data = EvaluationSet.from_records(queries, list(read_jsonl(args.data / "index_dev.jsonl.gz")))
    print(f"{args.artifact.name}: start {start_name}, max_length {max_length}, {len(queries)} queries", flush=True)
    for alpha in args.alphas:
        tuned.model.load_state_dict(tuned_weights)
        interpolate_weights(tuned.model, start, alpha)
        backend = TorchBackend(tuned, batch_size=128)
        started = time.monotonic()
        metrics = evaluate(backend.embed, data)
        result = {
            "alpha": alpha,
            "artifact": str(args.artifact),
            "data": args.data.name,
            "max_length": max_length,
            "recipe": {k: recipe.get(k) for k in ("learning_rate", "max_length", "num_items_per_class", "epochs")},
            **{k: metrics[k] for k in SHOWN},
            "seconds": round(time.monotonic() - started, 1),
            "command": " ".join(["python", *sys.argv]),
            "machine": machine(),
        }
        print(json.dumps(result), flush=True)
        if args.out:
            append_result(args.out, result)


if __name__ == "__main__":
    main()
