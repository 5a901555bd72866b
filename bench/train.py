"""Training speed of tunerflow's loop against sentence-transformers' trainer.

Same model (the bundled all-MiniLM-L6-v2), batch size, max length, precision
and data (whole Quora training clusters up to ``--docs`` texts, batches of
label groups). ``tunerflow`` runs the reference recipe's loss
(TripletMarginLoss + TripletMarginMiner, semi-hard) and sentence-transformers
its nearest equivalent, BatchSemiHardTripletLoss with the group-by-label batch
sampler; ``tunerflow-default`` runs config.yml's recipe as it is.
Each side runs in its own fresh interpreter; docs/s is the median over steps
after ``--warmup`` steps, with min and max, plus the process's peak RSS.

    .venv/bin/python bench/train.py --docs 3840 --batch-size 128 --max-length 64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QUORA, ROOT, TRIPLET, machine, peak_rss_mib, read_jsonl, run_all  # noqa: E402
from tunerflow.data import whole_clusters  # noqa: E402


def subset(docs: int) -> list[dict]:
    return whole_clusters(read_jsonl(QUORA / "train.jsonl.gz"), docs, label=lambda row: row["label"])


def step_rates(stamps: list[float], batch_sizes: list[int], warmup: int) -> dict:
    import statistics

    rates = [n / (b - a) for a, b, n in zip(stamps[:-1], stamps[1:], batch_sizes[1:], strict=True)][warmup:]
    return {
        "median": round(statistics.median(rates), 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "steps": len(rates),
    }


def run_tunerflow(args) -> dict:
    import torch

    from tunerflow.artifact import load_model
    from tunerflow.data import make_record
    from tunerflow.data.store import DatasetStore
    from tunerflow.runs.execute import build_setup
    from tunerflow.settings import section
    from tunerflow.training.callbacks import Callback
    from tunerflow.training.loop import train
    from tunerflow.training.recipe import Recipe
    from tunerflow.training.state import TrainState

    store = DatasetStore(tempfile.mkdtemp(prefix="bench-train-"))
    store.append(
        "train", [make_record(r["text"], r["label"], str(i), "quora") for i, r in enumerate(subset(args.docs))]
    )
    overrides = {"train_data": "train", "batch_size": args.batch_size, "max_length": args.max_length, "epochs": 1}
    overrides["precision"] = args.precision
    if args.forward_chunk is not None:
        overrides["forward_chunk"] = args.forward_chunk or args.batch_size  # 0: the whole batch in one pass
    if args.one == "tunerflow":
        overrides.update(TRIPLET)
    recipe = Recipe.from_options(section("recipe"), overrides)
    torch.manual_seed(0)
    setup = build_setup(recipe, store, load_model(recipe.model, max_length=recipe.max_length))
    state = TrainState(steps_per_epoch=[len(setup.sampler.epoch(0))])
    stamps, sizes = [], []

    class Clock(Callback):
        def on_epoch_begin(self, setup, state):
            stamps.append(time.perf_counter())
            sizes.append(0)

        def on_step_end(self, setup, state, loss):
            stamps.append(time.perf_counter())
            sizes.append(recipe.batch_size)

    train(setup, state, [Clock()])
    loss = f"{recipe.loss} + {recipe.miner}"
    return {"side": args.one, "loss": loss, "forward_chunk": recipe.forward_chunk, **_common(args)} | {
        **step_rates(stamps, sizes, args.warmup),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_sentence_transformers(args) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import BatchSemiHardTripletLoss
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    from tunerflow.modeling.sources import bundled_model_path

    torch.manual_seed(0)
    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    model.max_seq_length = args.max_length
    rows = subset(args.docs)
    labels = {label: i for i, label in enumerate(dict.fromkeys(r["label"] for r in rows))}
    data = Dataset.from_dict({"sentence": [r["text"] for r in rows], "label": [labels[r["label"]] for r in rows]})
    stamps, sizes = [], []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            stamps.append(time.perf_counter())
            sizes.append(0)

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())
            sizes.append(args.batch_size)

    training_args = SentenceTransformerTrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-st-"),
        num_train_epochs=1,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-5,
        batch_sampler=BatchSamplers.GROUP_BY_LABEL,
        bf16=args.precision == "bf16",
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=10_000,
        dataloader_drop_last=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=data,
        loss=BatchSemiHardTripletLoss(model),
        callbacks=[Clock()],
    )
    trainer.train()
    return {"side": "sentence-transformers", "loss": "BatchSemiHardTripletLoss", **_common(args)} | {
        **step_rates(stamps, sizes, args.warmup),
        "peak_rss_mib": peak_rss_mib(),
    }


def _common(args) -> dict:
    return {
        "docs": args.docs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "precision": args.precision,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3840)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sides", nargs="+", default=["sentence-transformers", "tunerflow", "tunerflow-default"])
    parser.add_argument(
        "--forward-chunk", type=int, default=None, help="tunerflow: 0 = whole batch; default config.yml"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train.jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run = run_sentence_transformers if args.one == "sentence-transformers" else run_tunerflow
        print(json.dumps(run(args)))
        return
    info = machine()
    print(json.dumps({"machine": info, "command": " ".join(sys.argv)}), flush=True)
    passed = ["--docs", str(args.docs), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    passed += ["--precision", args.precision, "--warmup", str(args.warmup)]
    if args.forward_chunk is not None:
        passed += ["--forward-chunk", str(args.forward_chunk)]
    run_all(Path(__file__), args.sides, "sentence-transformers", passed, args.out, info)


if __name__ == "__main__":
    main()
