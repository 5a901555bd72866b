"""What a model gets wrong on a set's dev split: a seeded sample of its top-1 errors, to read.

For every query, the index text ranked first; where its label is not the query's, the sample shows
the query, that text and the query's closest true match (cosine similarities by the model). The
figures a metric cannot give: whether the errors are the model's, or texts the labels group in a way
no reading of the words supports.

    PYTHONPATH=src:bench .venv/bin/python bench/errors.py --data data/wikianswers --sample 25 --seed 1 \
        --out bench/results/errors-issue13.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from common import append_result, machine  # bench/ is on sys.path when this script runs
from tunerflow.artifact import load_model
from tunerflow.data import read_jsonl
from tunerflow.inference.torch_backend import TorchBackend
from tunerflow.options import DType
from tunerflow.settings import section
from tunerflow.training.recipe import Recipe


def top1_errors(queries: list, index: list, queries_emb: np.ndarray, index_emb: np.ndarray) -> list[dict]:
    """Each query whose first-ranked index text has another label, with that text and its best true match."""
    similarity = queries_emb @ index_emb.T
    labels = np.array([record.label for record in index])
    errors = []
    for row, query in enumerate(queries):
        first = int(similarity[row].argmax())
        if labels[first] == query.label:
            continue
        positives = np.flatnonzero(labels == query.label)
        best = int(positives[similarity[row, positives].argmax()]) if positives.size else None
        errors.append(
            {
                "query": query.text,
                "first": index[first].text,
                "first_similarity": round(float(similarity[row, first]), 3),
                "match": index[best].text if best is not None else None,
                "match_similarity": round(float(similarity[row, best]), 3) if best is not None else None,
            }
        )
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder with query_dev.jsonl.gz, index_dev.jsonl.gz")
    parser.add_argument("--model", default=None, help="a model or artifact path (default: config.yml's model)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--sample", type=int, default=25, help="errors shown")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line")
    args = parser.parse_args()
    recipe = Recipe.from_options(section("recipe"), {"train_data": "train"})
    model = args.model or recipe.model
    queries = list(read_jsonl(args.data / "query_dev.jsonl.gz"))
    index = list(read_jsonl(args.data / "index_dev.jsonl.gz"))
    backend = TorchBackend(
        load_model(model, pooling=recipe.pooling, max_length=args.max_length),
        dtype=DType("float32"),
        batch_size=recipe.eval_batch_size,
    )
    errors = top1_errors(  # unit vectors: the products are cosine similarities
        queries,
        index,
        backend.embed([q.text for q in queries], normalize=True),
        backend.embed([r.text for r in index], normalize=True),
    )
    sample = random.Random(args.seed).sample(errors, min(args.sample, len(errors)))
    for number, error in enumerate(sample, 1):
        print(f"{number:2d}. {error['query']}")
        print(f"    first  {error['first_similarity']:.3f}  {error['first']}")
        if error["match"] is None:
            print("    match  none: no indexed text has the query's label")
        else:
            print(f"    match  {error['match_similarity']:.3f}  {error['match']}")
    row = {
        "data": args.data.name,
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "model": str(model),
        "max_length": args.max_length,
        "queries": len(queries),
        "indexed": len(index),
        "top1_errors": len(errors),
        "top1_error_share": round(len(errors) / max(len(queries), 1), 4),
        "seed": args.seed,
        "sample": sample,
    }
    print(json.dumps({key: value for key, value in row.items() if key != "sample"}), flush=True)
    if args.out:
        append_result(args.out, row)


if __name__ == "__main__":
    main()
