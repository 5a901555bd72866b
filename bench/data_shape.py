"""The statistics data-aware defaults look at, and what they choose, for the bundled data sets.

Token lengths with the bundled model's tokenizer (special tokens included), over all training
texts; also the share of texts truncated at config.yml's max_length and at the chosen one.

    PYTHONPATH=src .venv/bin/python bench/data_shape.py --data data/banking77 data/quora data/wikianswers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import append_result, machine  # bench/ is on sys.path when this script runs
from tunerflow.artifact.open import load_tokenizer
from tunerflow.data import read_jsonl
from tunerflow.inference.batching import tokenize
from tunerflow.modeling.sources import resolve_source
from tunerflow.settings import section
from tunerflow.training.data_defaults import choose, data_statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/banking77")])
    parser.add_argument("--out", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args()
    defaults = section("recipe")
    tokenizer, model_max = load_tokenizer(resolve_source(defaults["model"]))
    for data in args.data:
        records = list(read_jsonl(data / "train.jsonl.gz"))
        labels = np.asarray([r.label for r in records])
        lengths = np.asarray([len(ids) for ids in tokenize(tokenizer, [r.text for r in records], model_max)])
        stats = data_statistics(np.unique(labels, return_counts=True)[1], lengths)
        choices = choose(stats, defaults, (), evaluated=True, model_max_length=model_max)
        chosen = next(c.value for c in choices if c.option == "max_length")
        result = {
            "data": data.name,
            "statistics": stats.to_dict(),
            "truncated_at_default": round(float((lengths > defaults["max_length"]).mean()), 5),
            "truncated_at_chosen": round(float((lengths > chosen).mean()), 5),
            "choices": [c.to_dict() for c in choices],
            "machine": machine(),
        }
        print(json.dumps(result), flush=True)
        if args.out:
            append_result(args.out, result)


if __name__ == "__main__":
    main()
