"""A toy task a tiny random BERT can learn in seconds, and a RunManager around it."""

from __future__ import annotations

import random
from pathlib import Path

from tunerflow.data import make_record
from tunerflow.runs import RunManager
from tunerflow.settings import section
from tunerflow.training.recipe import Recipe
from tunerflow.training.state import TrainSetup, TrainState

TOPICS = "cat dog car train house city food water book tea money rain".split()
FILLER = "the a is of to in on for and or what how why can i you we my your".split()


def toy_records(n: int, seed: int, prefix: str):
    """Texts whose label is their topic word, hidden among random filler words."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        topic = i % len(TOPICS)
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randrange(len(words) + 1), TOPICS[topic])
        records.append(make_record(" ".join(words), topic, f"{prefix}{i}", "toy"))
    return records


def toy_manager(home: Path, start_worker: bool = True) -> RunManager:
    manager = RunManager(home, section("recipe"), start_worker=start_worker)
    if "train" not in manager.datasets.names():
        manager.append("train", toy_records(240, seed=1, prefix="t"))
        manager.append("queries", toy_records(24, seed=2, prefix="q"))
        manager.append("index", toy_records(96, seed=3, prefix="i"))
    return manager


def toy_options(model_dir: Path, **overrides) -> dict:
    options = {
        "train_data": "train",
        "eval_query_data": "queries",
        "eval_index_data": "index",
        "model": str(model_dir),
        "learning_rate": 2e-3,
        "epochs": 3,
        "batch_size": 24,
        "num_items_per_class": 4,
        "max_length": 16,
        "warmup_ratio": 0.0,
        "data_aware": False,  # the tests pin their options; tests/test_data_defaults.py covers the choices
        "precision": "fp32",  # the same on every CPU; tests/test_hardware.py covers precision auto
    }
    options.update(overrides)
    return options


def trained_weights(home: Path, model_dir: Path, **overrides) -> dict:
    """The weights a toy run with ``overrides`` published (a run of its own under ``home``, run at once)."""
    from safetensors.torch import load_file

    manager = toy_manager(home, start_worker=False)
    try:
        started = manager.start(toy_options(model_dir, run_name="r", **overrides))
        record = manager.run_now(started.run_name)
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    return load_file(f"{record.artifact}/model.safetensors")


def toy_setup(manager: RunManager, model_dir: Path, **overrides) -> tuple[TrainSetup, TrainState]:
    """The loop's setup and a fresh state for the toy task, seeded as a run seeds them."""
    import torch

    from tunerflow.artifact import load_model
    from tunerflow.runs.execute import build_setup

    recipe = Recipe.from_options(section("recipe"), toy_options(model_dir, **overrides))
    torch.manual_seed(recipe.seed)
    setup = build_setup(recipe, manager.datasets, load_model(recipe.model, max_length=recipe.max_length))
    return setup, TrainState(steps_per_epoch=[len(setup.batches(e)) for e in range(recipe.epochs)])
