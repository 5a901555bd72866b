"""One owner of the best epoch: the callbacks' order changes nothing; docs/s counts the texts trained."""

from __future__ import annotations

import json
import logging
import random

import torch

from tests.training_helpers import toy_manager, toy_setup
from tunerflow.training.callbacks import Callback, Cancel, Checkpoint, Progress
from tunerflow.training.loop import train
from tunerflow.training.selection import Selection
from tunerflow.training.state import StopReason

log = logging.getLogger("test")


class Recorder(Callback):
    """Copies the weights after each epoch and what the callbacks see of the selection's decisions."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.seen: list[tuple] = []

    def on_epoch_end(self, setup, state):
        self.weights[state.epoch] = {k: v.detach().clone() for k, v in setup.model.state_dict().items()}
        self.seen.append((state.epoch, state.best_epoch, state.epochs_without_improvement, state.stop_reason))


def _train_in_order(manager, model_dir, directory, order):
    setup, state = toy_setup(manager, model_dir, epochs=5, keep_best=True, early_stopping_patience=2)
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])  # before, then epochs 1..: best epoch 1, stop after epoch 3
    selection = Selection(
        lambda: {"model_average_precision": next(scores)},
        "model_average_precision",
        log,
        best_path=directory / "best.safetensors",
        patience=2,
    )
    recorder = Recorder()
    callbacks = [Progress(log), Cancel(lambda: None), Checkpoint(directory / "checkpoint", log), recorder]
    train(setup, state, order(callbacks), selection)
    assert selection.restore_best(setup.model, state)
    published = {k: v.detach().clone() for k, v in setup.model.state_dict().items()}
    saved = json.loads((directory / "checkpoint/state.json").read_text())["state"]
    return state, recorder, published, saved


def test_callback_order_changes_nothing(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    orders = {
        "listed": list,
        "reversed": lambda callbacks: callbacks[::-1],
        "shuffled": lambda callbacks: random.Random(3).sample(callbacks, len(callbacks)),
    }
    results = {}
    try:
        for name, order in orders.items():
            results[name] = _train_in_order(manager, tiny_model_dir, tmp_path / name, order)
    finally:
        manager.close()
    reference = results["listed"][2]
    for name, (state, recorder, published, saved) in results.items():
        assert (state.best_epoch, state.epoch, state.stop_reason) == (1, 3, StopReason.EARLY_STOPPING), name
        # every callback, wherever it sits, sees the epoch's decisions, and so does the checkpoint
        assert recorder.seen == [(1, 1, 0, None), (2, 1, 1, None), (3, 1, 2, StopReason.EARLY_STOPPING)], name
        assert (saved["best_epoch"], saved["stop_reason"], len(saved["evaluations"])) == (1, "early stopping", 4)
        # the published weights are epoch 1's, not the last epoch's
        assert all(torch.equal(published[k], recorder.weights[1][k]) for k in published), name
        assert not all(torch.equal(published[k], recorder.weights[3][k]) for k in published), name
        assert all(torch.equal(published[k], reference[k]) for k in published), name


def test_docs_per_second_counts_the_texts_trained(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        # 22 is not a multiple of the 4 texts per label: a batch holds 5 labels, 20 texts
        setup, state = toy_setup(manager, tiny_model_dir, epochs=2, batch_size=22)
    finally:
        manager.close()
    ticks = iter(range(10_000))
    progress = Progress(log, every_seconds=0, clock=lambda: float(next(ticks)))  # one second per step
    train(setup, state, [progress])
    texts = sum(len(batch) for epoch in range(2) for batch in setup.batches(epoch))
    assert state.texts_trained == texts < 22 * state.step
    assert progress.latest["docs_per_second"] == round(texts / state.step, 1)
