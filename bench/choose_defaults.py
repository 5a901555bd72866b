"""Compare training recipes on a data set the bundled model has room to learn (WikiAnswers, Banking77).

Each candidate overrides the default recipe (config.yml) and trains the bundled
all-MiniLM-L6-v2 on the same subset of whole label clusters (with --per-label, at
most that many texts of every label first), evaluated on the dev split (queries
against the index, limit 20; --queries: the first N queries only) before and after.

    .venv/bin/python bench/choose_defaults.py --data data/wikianswers --train-docs 12800 \
        --candidates triplet-1e-5 triplet-3e-5 ntxent-3e-5 --out bench/results/defaults-wikianswers.jsonl

Issue 13 (zero-shot, the reference recipe, the old default, the new default with and without hard
batches; each set, full size; results in bench/RESULTS.md):

    for set in banking77 wikianswers quora; do
      PYTHONPATH=src .venv/bin/python bench/choose_defaults.py --data data/$set --train-docs 15000 --epochs 3 \
          --keep-best --candidates reference old-default data-aware data-aware-hard \
          --out bench/results/defaults-issue13-$set.jsonl
    done
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from common import TRIPLET, append_result, machine  # bench/ is on sys.path when this script runs
from tunerflow.data import read_jsonl, whole_clusters
from tunerflow.runs import RunManager
from tunerflow.settings import section

NTXENT = {"loss": "NTXentLoss", "loss_options": {"temperature": 0.05}, "miner": "none"}  # in-batch negatives
CANDIDATES = {
    "triplet-1e-5": {**TRIPLET, "learning_rate": 1e-5},
    "triplet-3e-5": {**TRIPLET, "learning_rate": 3e-5},
    "triplet-1e-4": {**TRIPLET, "learning_rate": 1e-4},
    "triplet-m0.2-3e-5": {
        **TRIPLET,
        "loss_options": {"margin": 0.2, "distance": "CosineSimilarity"},
        "learning_rate": 3e-5,
    },
    "ntxent-3e-5": {
        "loss": "NTXentLoss",
        "loss_options": {"temperature": 0.05},
        "miner": "none",
        "learning_rate": 3e-5,
    },
    "ntxent-1e-4": {
        "loss": "NTXentLoss",
        "loss_options": {"temperature": 0.05},
        "miner": "none",
        "learning_rate": 1e-4,
    },
    "ms-1e-4": {
        "loss": "MultiSimilarityLoss",
        "loss_options": {},
        "miner": "MultiSimilarityMiner",
        "miner_options": {},
        "learning_rate": 1e-4,
    },
    "ms-3e-5": {
        "loss": "MultiSimilarityLoss",
        "loss_options": {},
        "miner": "MultiSimilarityMiner",
        "miner_options": {},
        "learning_rate": 3e-5,
    },
}
# The earlier candidates pin data_aware off (their rows were measured before it existed).
CANDIDATES = {name: {"data_aware": False, **overrides} for name, overrides in CANDIDATES.items()}
CANDIDATES.update(
    {
        "reference": {**TRIPLET, "learning_rate": 1e-5, "data_aware": False},  # the reference tool's recipe
        "old-default": {"data_aware": False},  # config.yml's recipe before issue 13
        "data-aware": {"data_aware": True},  # the same, with data-aware choices for what is left unset
        "data-aware-hard": {"data_aware": True, "sampler": "hard"},
        "data-aware-wiseft": {"data_aware": True, "wiseft_alpha": 0.5},  # WiSE-FT: half tuned, half starting
        "data-aware-b512": {"data_aware": True, "batch_size": 512},  # more in-batch negatives for pairs
        "data-aware-2e-4": {"data_aware": True, "learning_rate": 2e-4},  # a faster rate for pairs
        "data-aware-3e-4": {"data_aware": True, "learning_rate": 3e-4},
        "data-aware-blas": {"data_aware": True, "linear_kernel": "blas"},  # issue 14: torch's MKL
        "data-aware-onednn": {"data_aware": True, "linear_kernel": "onednn"},  # issue 14: oneDNN linear layers
        # Issue 13, a domain the model already knows (Quora): gentler rates, and the loss it was trained with
        "data-aware-1e-5": {"data_aware": True, "learning_rate": 1e-5},
        "data-aware-3e-5": {"data_aware": True, "learning_rate": 3e-5},
        # Issue 13, pairs at 15,000 texts: whole small clusters per batch (m 4, the old default's)
        "data-aware-m4": {"data_aware": True, "num_items_per_class": 4},
        "data-aware-ntxent-2e-5": {"data_aware": True, **NTXENT, "learning_rate": 2e-5},
        "data-aware-ntxent-5e-5": {"data_aware": True, **NTXENT, "learning_rate": 5e-5},
        # the recipe probe (tunerflow.runs.probe) turned off: the data-aware recipe as it was before it
        "data-aware-no-probe": {"data_aware": True, "probe": False},
    }
)


def _with_seeds(name: str, overrides: dict) -> None:
    """``name`` (the recipe's seed) and ``name-seed1`` to ``-seed3``: the same data-aware overrides, 4 seeds."""
    CANDIDATES[name] = {"data_aware": True, **overrides}
    for seed in (1, 2, 3):
        CANDIDATES[f"{name}-seed{seed}"] = {"data_aware": True, **overrides, "seed": seed}


for _kernel in ("torch", "bits"):  # issue 14: dropout masks from torch's bernoulli_ or from 16-bit words
    _with_seeds(f"data-aware-dropout-{_kernel}", {"dropout_kernel": _kernel})
# Issue 13, pairs at 15,000 texts: config.yml's m and rate against the small-pairs rule, named (4 seeds each)
_with_seeds("data-aware-m4-3e-5", {"num_items_per_class": 4, "learning_rate": 3e-5})
_with_seeds("data-aware-m2-1e-4", {"num_items_per_class": 2, "learning_rate": 1e-4})
for _precision in ("fp32", "bf16"):  # issue 14: training precision (precision: auto picks bf16 on AMX)
    _with_seeds(f"data-aware-{_precision}", {"precision": _precision})
# Issue 13's search for the data-aware rules (chosen with --select, on texts held out of train).
MS = CANDIDATES["ms-1e-4"]
for _m in (8, 16, 32):
    CANDIDATES[f"ms-1e-4-m{_m}"] = {**MS, "num_items_per_class": _m}
    CANDIDATES[f"ms-1e-4-m{_m}-hard"] = {**MS, "num_items_per_class": _m, "sampler": "hard"}
    CANDIDATES[f"ms-3e-5-m{_m}"] = {**CANDIDATES["ms-3e-5"], "num_items_per_class": _m}
CANDIDATES["ms-1e-4-hard"] = {**MS, "sampler": "hard"}
CANDIDATES["ms-3e-5-hard"] = {**CANDIDATES["ms-3e-5"], "sampler": "hard"}
SHOWN = ("model_average_precision", "model_reciprocal_rank", "model_recall_at_k", "model_ndcg_at_k")


def held_out(records: list, share: float = 0.2, seed: int = 0) -> tuple[list, list, list]:
    """Train, queries and index for choosing, all from the train split (the dev split stays unseen).

    A label with at least 5 texts gives ``share`` of them as queries and as many to the index (the
    dev splits of clustered sets hold the same labels as train); of the smaller labels (pairs),
    ``share`` of the labels go whole to the evaluation: their first text a query, the rest the index.
    """
    rng = random.Random(seed)
    by_label: dict = defaultdict(list)
    for record in records:
        by_label[record.label].append(record)
    train, queries, index = [], [], []
    for label in sorted(by_label):
        texts = by_label[label]
        rng.shuffle(texts)
        if len(texts) >= 5:
            cut = max(1, round(share * len(texts)))
            queries += texts[:cut]
            index += texts[cut : 2 * cut]
            train += texts[2 * cut :]
        elif rng.random() < share:
            queries.append(texts[0])
            index += texts[1:]
        else:
            train += texts
    return train, queries, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/wikianswers"))
    parser.add_argument("--train-docs", type=int, default=12800)
    parser.add_argument(
        "--epochs",
        type=lambda value: value if value == "auto" else int(value),
        default=1,
        help="a number, or auto: leave epochs to the run (config.yml's, or the data-aware rule's)",
    )
    parser.add_argument("--per-label", type=int, default=None, help="at most this many texts of each label")
    parser.add_argument("--queries", type=int, default=None, help="evaluate with the first N queries only")
    parser.add_argument("--keep-best", action="store_true", help="publish the best epoch (config.yml's default)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help=f"from: {', '.join(CANDIDATES)}")
    parser.add_argument("--default", action="store_true", help="also run config.yml's recipe unchanged")
    parser.add_argument(
        "--select",
        action="store_true",
        help="evaluate on texts held out of the train split (never the dev split): for choosing a default",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    records = list(read_jsonl(args.data / "train.jsonl.gz"))
    if args.per_label:
        seen: Counter = Counter()
        kept = []
        for record in records:
            seen[record.label] += 1
            if seen[record.label] <= args.per_label:
                kept.append(record)
        records = kept
    if args.select:
        # A pool of whole labels big enough for train_docs after the hold-out; labels outside it add
        # distractors to the index (3 per query), as the dev indexes hold texts no query matches.
        pool = whole_clusters(records, int(args.train_docs / 0.8), label=lambda r: r.label, seed=0)
        pooled = {r.label for r in pool}
        outside = [r for r in records if r.label not in pooled]
        records, queries, index = held_out(pool)
        queries = queries[: args.queries]
        index += outside[: 3 * len(queries)]
    else:
        queries = list(read_jsonl(args.data / "query_dev.jsonl.gz"))[: args.queries]
        index = list(read_jsonl(args.data / "index_dev.jsonl.gz"))
    train = whole_clusters(records, args.train_docs, label=lambda r: r.label, seed=0)
    command = " ".join(["python", *sys.argv])
    where = {**machine(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    home = Path(tempfile.mkdtemp(prefix="tunerflow-defaults-"))
    manager = RunManager(home, section("recipe"), start_worker=False)
    manager.append("train", train)
    manager.append("queries", queries)
    manager.append("index", index)
    runs = [(name, CANDIDATES[name]) for name in args.candidates]
    if args.default:
        runs.insert(0, ("config.yml", {}))
    print(f"{args.data.name}: {len(train)} train texts, {len(queries)} queries, {args.epochs} epoch(s); home {home}")
    for name, overrides in runs:
        options = {
            "train_data": "train",
            "eval_query_data": "queries",
            "eval_index_data": "index",
            **({} if args.epochs == "auto" else {"epochs": args.epochs}),
            "keep_best": args.keep_best,
            **overrides,
        }
        started = time.monotonic()
        record = manager.run_now(manager.start(options).run_name)
        metrics = record.metrics
        result = {
            "candidate": name,
            "command": command,
            "machine": {**where, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
            "queries": len(queries),
            "evaluated_on": "held out of train" if args.select else "dev",
            "data_aware": record.data_aware,
            "probe": record.probe,  # what the recipe probe measured and chose; the recipe trained is the record's
            "trained": {key: record.recipe.get(key) for key in ("loss", "miner", "learning_rate", "max_length")},
            "after": {k: (metrics.get("after") or {}).get(k) for k in SHOWN} if metrics.get("after") else None,
            "data": args.data.name,
            "train_docs": len(train),
            "epochs": args.epochs,
            "epochs_run": len(metrics.get("epochs", [])),
            "status": record.status.value,
            "details": record.details,
            "overrides": overrides,
            "precision": record.recipe.get("precision"),  # as trained (precision: auto resolves per machine)
            "before": {k: metrics.get("before", {}).get(k) for k in SHOWN} if metrics.get("before") else None,
            "per_epoch": [{k: e["metrics"][k] for k in SHOWN} for e in metrics.get("epochs", [])],
            "epoch_losses": metrics.get("epoch_losses"),
            "train_seconds": metrics.get("train_seconds"),
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(result), flush=True)
        if args.out:
            append_result(args.out, result)
    manager.close()


if __name__ == "__main__":
    main()
