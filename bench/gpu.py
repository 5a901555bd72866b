"""GPU check: the reference recipe on a BERT-base architecture with random weights, bf16.

Run by ``bench/gpu.sh`` on a machine with a CUDA GPU and no network. The
model is ``BertConfig()`` (12 layers, 768-d) with random weights and the
bundled model's (bert-base-uncased) vocabulary, so nothing is downloaded.
Training uses tunerflow's own setup and loop (TripletMarginLoss +
TripletMarginMiner, batch 128, 4 per label, AdamW, bf16 autocast) on Quora
training texts; encoding uses the PyTorch backend (batch 512, length-sorted).
Prints one JSON object: training docs/s (median over steps after warm-up),
peak GPU memory, encoding docs/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def bert_base_dir(tokenizer_dir: Path) -> Path:
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    directory = Path(tempfile.mkdtemp(prefix="bert-base-random-"))
    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, directory / name)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokenizer", type=Path, required=True, help="directory with the bundled model's tokenizer")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--encode-texts", type=int, default=20000)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script (fp32), not a measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import torch

    from common import TRIPLET, machine, quora_dev, read_jsonl
    from tunerflow.artifact import load_model
    from tunerflow.data import make_record
    from tunerflow.data.store import DatasetStore
    from tunerflow.inference.torch_backend import TorchBackend
    from tunerflow.runs.execute import build_setup
    from tunerflow.settings import section
    from tunerflow.training.callbacks import Callback
    from tunerflow.training.loop import train
    from tunerflow.training.recipe import Recipe
    from tunerflow.training.state import TrainState

    cuda = args.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    model_dir = bert_base_dir(args.tokenizer)
    rows = read_jsonl(ROOT / "data/quora/train.jsonl.gz")
    store = DatasetStore(tempfile.mkdtemp(prefix="gpu-bench-"))
    store.append("train", [make_record(r["text"], r["label"], str(i), "quora") for i, r in enumerate(rows)])
    recipe = Recipe.from_options(
        section("recipe"),
        {"train_data": "train", "model": str(model_dir), "device": args.device, "precision": "bf16" if cuda else "fp32",
         "epochs": 1, "batch_size": args.batch_size, "num_items_per_class": 4, "max_length": 64, "learning_rate": 1e-5,
         **TRIPLET},
    )  # fmt: skip
    loaded = load_model(recipe.model, max_length=recipe.max_length)
    setup = build_setup(recipe, store, loaded)
    batches = len(setup.sampler.epoch(0))
    state = TrainState(steps_per_epoch=[min(batches, args.steps)])
    stamps: list[float] = []

    class Clock(Callback):
        def on_step_end(self, setup, state, loss):
            if state.step == state.total_steps:
                state.stop_reason = "enough"
            sync()
            stamps.append(time.perf_counter())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train(setup, state, [Clock()])
    gaps = [b - a for a, b in zip(stamps[args.warmup : -1], stamps[args.warmup + 1 :], strict=True)]
    train_rate = recipe.batch_size / statistics.median(gaps)
    train_memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    queries, index = quora_dev()
    texts = ([q["text"] for q in queries] + [r["text"] for r in index])[: args.encode_texts]
    encoder = TorchBackend(loaded, device=args.device, dtype="bfloat16" if cuda else "float32", batch_size=512)
    encoder.embed(texts[:2000])
    sync()
    started = time.perf_counter()
    encoder.embed(texts)
    sync()
    encode_rate = len(texts) / (time.perf_counter() - started)
    print(
        json.dumps(
            {
                "machine": machine(),
                "model": "BERT-base architecture (BertConfig()), random weights",
                "recipe": f"TripletMarginLoss + TripletMarginMiner, batch {args.batch_size}, 4 per label, AdamW, "
                + ("bf16 autocast" if cuda else "fp32"),
                "train_steps_timed": len(gaps),
                "train_docs_per_second": round(train_rate, 1),
                "train_peak_gpu_memory_gib": round(train_memory, 2) if cuda else None,
                "dry_run": not cuda,
                "encode_texts": len(texts),
                "encode_docs_per_second": round(encode_rate, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
