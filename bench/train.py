"""Training speed of tunerflow's loop against sentence-transformers' trainer.

Same model (the bundled all-MiniLM-L6-v2), batch size, max length, precision
and data (whole Quora training clusters up to ``--docs`` texts, batches of
label groups). ``tunerflow`` runs the reference recipe's loss
(TripletMarginLoss + TripletMarginMiner, semi-hard) and sentence-transformers
its nearest equivalent, BatchSemiHardTripletLoss with the group-by-label batch
sampler; ``tunerflow-default`` runs config.yml's recipe as it is.
Each side runs in its own fresh interpreter; docs/s is the median over steps
after ``--warmup`` steps, with min and max, plus the process's peak RSS.

``--profile`` adds, for the tunerflow sides, where a step's wall time goes
(median ms per step after the warm-up): waiting for the next batch (its
tokenising and padding run ahead in a feeder thread, whose own time per batch
is given apart), forward (summed over the step's length chunks), miner, loss,
backward, gradient clipping, zero_grad, the optimizer step, and the rest of
the step. The timers wrap the objects the loop calls; nothing in the loop
changes.

    .venv/bin/python bench/train.py --docs 3840 --batch-size 128 --max-length 64
    .venv/bin/python bench/train.py --docs 2560 --sides tunerflow --profile
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
    from tunerflow.training.step_forward import step_forward_of

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
    if args.optimizer_options is not None:
        overrides["optimizer_options"] = {**section("recipe")["optimizer_options"], **args.optimizer_options}
    overrides.update(args.recipe or {})
    recipe = Recipe.from_options(section("recipe"), overrides)
    torch.manual_seed(0)
    setup = build_setup(recipe, store, load_model(recipe.model, max_length=recipe.max_length))
    chosen = {"forward_chunk": recipe.forward_chunk, "dropout_kernel": step_forward_of(setup).dropout.value}
    state = TrainState(steps_per_epoch=[len(setup.sampler.epoch(0))])
    stamps, sizes = [], []

    class Clock(Callback):
        def on_epoch_begin(self, setup, state):
            stamps.append(time.perf_counter())
            sizes.append(0)

        def on_step_end(self, setup, state, loss):
            stamps.append(time.perf_counter())
            sizes.append(recipe.batch_size)
            if phases is not None:
                phases.end_step()

    phases = StepPhases(setup) if args.profile else None
    train(setup, state, [Clock()])
    loss = f"{recipe.loss} + {recipe.miner}"
    return {"side": args.one, "loss": loss, **chosen, "recipe": args.recipe or {}, **_common(args)} | {
        **step_rates(stamps, sizes, args.warmup),
        "optimizer_fused": bool(setup.optimizer.defaults.get("fused")),
        **({"phases_ms": phases.summary(stamps, args.warmup)} if phases else {}),
        "peak_rss_mib": peak_rss_mib(),
    }


class StepPhases:
    """Wall time of each part of a training step, by wrapping what the loop calls (``--profile``).

    The loop's calls add to the current step's totals (forward is called once per length chunk, and
    the number of chunks varies with the token budget); :meth:`end_step` closes a step. ``prepare``
    runs ahead in the feeder thread: its time overlaps the loop's and is not part of the step's sum.
    """

    def __init__(self, setup) -> None:
        import torch

        self.current: dict[str, float] = {}
        self.steps: list[dict[str, float]] = []
        self.prepared: list[float] = []
        setup.forward = self._timed("forward", setup.forward or setup.model)
        if setup.miner is not None:
            setup.miner = self._timed("miner", setup.miner)
        setup.loss_fn.forward = self._timed("loss", setup.loss_fn.forward)  # parameters() stay the module's
        setup._prepare = self._timed("prepare", setup._prepare, add=lambda _, seconds: self.prepared.append(seconds))
        step_inputs = setup.step_inputs
        setup.step_inputs = lambda batches, start: self._timed_iter("wait for batch", step_inputs(batches, start))
        for optimizer in setup.optimizers:
            optimizer.step = self._timed("optimizer step", optimizer.step)
            optimizer.zero_grad = self._timed("zero_grad", optimizer.zero_grad)
        torch.Tensor.backward = self._timed("backward", torch.Tensor.backward)
        torch.nn.utils.clip_grad_norm_ = self._timed("clip grad norm", torch.nn.utils.clip_grad_norm_)

    def _add(self, name: str, seconds: float) -> None:
        self.current[name] = self.current.get(name, 0.0) + seconds

    def _timed(self, name: str, call, add=None):
        """``call``, its time added to the current step (or given to ``add``: the feeder thread's)."""
        add = add or self._add

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                add(name, time.perf_counter() - start)

        return timed

    def _timed_iter(self, name: str, items):
        items = iter(items)
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            self._add(name, time.perf_counter() - start)
            yield item

    def end_step(self) -> None:
        self.steps.append(self.current)
        self.current = {}

    def summary(self, stamps: list[float], warmup: int) -> dict:
        """Median ms per step of each phase over the steps after ``warmup``, the rest of the step, the step."""
        import statistics

        totals = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)][warmup:]
        steps = self.steps[warmup:]
        names = list(dict.fromkeys(name for step in steps for name in step))

        def ms(values) -> float:
            return round(1000 * statistics.median(values), 1)

        out = {name: ms([step.get(name, 0.0) for step in steps]) for name in names}
        out["rest of the step"] = ms([total - sum(step.values()) for total, step in zip(totals, steps, strict=True)])
        out["step"] = ms(totals)
        out["prepare (feeder thread, per batch)"] = ms(self.prepared[warmup:])
        return out


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
    parser.add_argument(
        "--optimizer-options", type=json.loads, default=None, help="tunerflow: JSON, e.g. '{\"fused\": false}'"
    )
    parser.add_argument(
        "--recipe",
        type=json.loads,
        default=None,
        help='tunerflow: recipe options, JSON: \'{"dropout_kernel": "torch"}\'',
    )
    parser.add_argument("--profile", action="store_true", help="tunerflow: where each step's time goes")
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
    if args.optimizer_options is not None:
        passed += ["--optimizer-options", json.dumps(args.optimizer_options)]
    if args.recipe is not None:
        passed += ["--recipe", json.dumps(args.recipe)]
    if args.profile:
        passed += ["--profile"]
    run_all(Path(__file__), args.sides, "sentence-transformers", passed, args.out, info)


if __name__ == "__main__":
    main()
