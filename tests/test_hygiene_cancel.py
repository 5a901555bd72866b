"""Cancelling takes effect within a step, a slice of evaluation texts or one epoch's batch planning."""

from __future__ import annotations

import pytest

import tunerflow.runs.execute as execute
from tests.training_helpers import toy_manager, toy_options
from tunerflow.data.sampler import LabelBalancedBatches
from tunerflow.runs import RunStatus


@pytest.fixture
def manager(tmp_path):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    yield manager
    manager.close()


def test_cancel_during_evaluation_stops_at_the_next_slice(manager, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(execute, "STOP_CHECK_TEXTS", 8)  # 24 queries + 96 index texts: 15 slices
    calls = []

    class CancelledWhileEmbedding(execute.TorchBackend):
        def embed(self, texts, **options):
            calls.append(len(texts))
            if len(calls) == 2:
                manager.cancel("evaluating")
            return super().embed(texts, **options)

    monkeypatch.setattr(execute, "TorchBackend", CancelledWhileEmbedding)
    manager.start(toy_options(tiny_model_dir, run_name="evaluating"))
    record = manager.run_now("evaluating")
    assert record.status is RunStatus.CANCELLED
    assert calls == [8, 8]  # the third slice was never embedded; no step trained
    assert not (manager.runs_dir / "evaluating/checkpoint/state.json").exists()


def test_cancel_during_the_precision_checks_publishes_nothing(manager, tiny_model_dir, monkeypatch):
    import tunerflow.runs.precision as precision

    monkeypatch.setattr(execute, "STOP_CHECK_TEXTS", 8)
    calls = []

    class CancelledWhileChecking(precision.TorchBackend):
        def embed(self, texts, **options):
            calls.append(len(texts))
            if len(calls) == 1:
                manager.cancel("checking")
            return super().embed(texts, **options)

    monkeypatch.setattr(precision, "TorchBackend", CancelledWhileChecking)
    manager.start(toy_options(tiny_model_dir, run_name="checking"))
    record = manager.run_now("checking")
    assert record.status is RunStatus.CANCELLED
    assert calls == [8]  # fp32's first slice of the checks; the next one saw the cancel
    assert not any(path.name.endswith("checking") or ".checking." in path.name for path in manager.artifacts.iterdir())


def test_cancel_while_planning_many_epochs(manager, tiny_model_dir, monkeypatch):
    planned = []
    original = LabelBalancedBatches.epoch

    def plan(self, epoch):
        planned.append(epoch)
        if len(planned) == 3:
            manager.cancel("planning")
        return original(self, epoch)

    monkeypatch.setattr(LabelBalancedBatches, "epoch", plan)
    manager.start(toy_options(tiny_model_dir, run_name="planning", epochs=1000))
    record = manager.run_now("planning")
    assert record.status is RunStatus.CANCELLED
    assert planned == [0, 1, 2]  # not 1000 epochs planned before the cancel is seen


def test_cancel_in_a_long_epoch_stops_after_the_current_step(manager, tiny_model_dir, monkeypatch):
    class CancelAtStepTwo(execute.Progress):
        def on_step_end(self, setup, state, loss):
            super().on_step_end(setup, state, loss)
            if state.step == 2:
                manager.cancel("long")

    monkeypatch.setattr(execute, "Progress", CancelAtStepTwo)
    manager.start(toy_options(tiny_model_dir, run_name="long", epochs=5, eval_query_data=None, eval_index_data=None))
    record = manager.run_now("long")
    assert record.status is RunStatus.CANCELLED
    assert (record.metrics["steps"], record.metrics["total_steps"]) == (2, 50)
