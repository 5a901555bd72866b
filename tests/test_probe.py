"""The probe: its split, its choice, the data-aware rule that turns it on, and probed runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.training_helpers import toy_manager, toy_options
from tunerflow.runs import probe
from tunerflow.settings import section
from tunerflow.training.data_defaults import choose as choose_defaults
from tunerflow.training.data_defaults import data_statistics
from tunerflow.training.recipe import Recipe

DEFAULTS = section("recipe")


def _pairs(labels: int) -> np.ndarray:
    return np.repeat(np.arange(labels), 2)


def test_the_split_holds_out_whole_labels_with_distractors_of_other_labels():
    labels = np.concatenate([_pairs(1000), np.full(5, 1000), [1001]])  # 1,000 pairs, a label of 5, a singleton
    keep = np.ones(len(labels), dtype=bool)
    keep[:20] = False  # the run's own validation slice: labels 0-9, never used
    split = probe.probe_split(labels, keep, seed=3)
    queries, distractors = split.queries, split.distractors
    assert not (queries & distractors).any() and not ((queries | distractors) & ~keep).any()
    held = set(labels[queries])
    assert len(held) == round(probe.PROBE_SHARE * 991)  # labels with two texts or more in keep: 990 pairs + the 5
    for label in held:  # whole labels: every query has its match
        assert queries[labels == label].all()
    assert not held & set(labels[distractors])
    assert distractors.sum() == probe.DISTRACTORS * queries.sum()
    again = probe.probe_split(labels, keep, seed=3)
    assert (again.queries == queries).all() and (again.distractors == distractors).all()  # deterministic
    assert not (probe.probe_split(labels, keep, seed=4).queries == queries).all()


def test_too_few_labels_to_hold_out_skip_the_probe():
    labels = _pairs(round(probe.PROBE_MIN_LABELS / probe.PROBE_SHARE) - 5)  # PROBE_SHARE of them: under the minimum
    assert probe.probe_split(labels, np.ones(len(labels), dtype=bool), seed=0) is None


def test_the_gentle_recipe_changes_only_what_differs():
    recipe = Recipe.from_options(DEFAULTS, {"train_data": "t", "learning_rate": 1e-4})
    assert probe.gentle_changes(recipe) == {k: v for k, v in probe.GENTLE.items() if k != "miner_options"}  # {} both
    same = Recipe.from_options(DEFAULTS, {"train_data": "t", **probe.GENTLE})
    assert probe.gentle_changes(same) == {}


def _choice(stats, given=(), current=None):
    options = {**DEFAULTS, **(current or {})}
    found = choose_defaults(stats, options, given, evaluated=True, model_max_length=256)
    return {c.option: c for c in found}


def test_data_aware_probes_large_pair_data_that_leaves_loss_and_rate_open():
    pairs = data_statistics(np.array([2] * 8000 + [3] * 2000), np.full(2000, 15))
    chosen = _choice(pairs)
    assert chosen["probe"].value is True and chosen["probe"].changed and chosen["probe"].reason.startswith("pair data")
    assert "the probe may change it to NTXentLoss" in chosen["loss"].reason
    assert not _choice(pairs, given={"loss"})["probe"].value
    assert "the run sets loss" in _choice(pairs, given={"loss"})["probe"].reason
    assert not _choice(pairs, given={"learning_rate", "miner"})["probe"].value
    other = _choice(pairs, current={"loss": "TripletMarginLoss"})["probe"]
    assert not other.value and "measured against MultiSimilarityLoss only" in other.reason
    clusters = _choice(data_statistics(np.full(770, 100), np.full(2000, 15)))
    assert not clusters["probe"].value and "clusters" in clusters["probe"].reason
    assert "no measurement yet" in clusters["loss"].reason
    small = _choice(data_statistics(np.array([2] * 800 + [3] * 200), np.full(2000, 15)))["probe"]
    assert not small.value and small.reason.startswith("config.yml's; small data (2200 texts")
    assert "probe" not in _choice(pairs, given={"probe"})


@pytest.fixture
def toy_probe(monkeypatch):
    """The toy task's 12 labels are few: hold out 2 of them."""
    monkeypatch.setattr(probe, "PROBE_MIN_LABELS", 2)


def _run(manager, model_dir, name, **overrides):
    record = manager.run_now(manager.start(toy_options(model_dir, run_name=name, epochs=1, **overrides)).run_name)
    assert record.status.value == "FINISHED", record.details
    return record, load_file(f"{record.artifact}/model.safetensors")


@pytest.mark.parametrize("head", [{}, {"output_dim": 16}], ids=["as-is", "new-head"])
def test_a_probed_run_on_a_known_domain_trains_as_if_its_recipe_named_the_gentle_one(
    tmp_path, tiny_model_dir, toy_probe, monkeypatch, head
):
    monkeypatch.setattr(probe, "KNOWN_AP", 0.0)  # any starting model "knows" the toy data
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        probed, weights = _run(manager, tiny_model_dir, "probed", probe=True, **head)
        result = probed.probe
        assert result["chosen"] == probe.GENTLE_NAME and result["changes"]["loss"] == "NTXentLoss"
        assert 0 < result["before"] <= 1 and result["queries"] > 0 and result["index"] > result["queries"]
        assert all(probed.recipe[key] == value for key, value in probe.GENTLE.items())  # the recipe as trained
        log = manager.logs("probed")[0]
        assert "probe: NTXentLoss 2e-5: the starting model already knows this data (average precision" in log
        assert json.loads((tmp_path / "home/runs/probed" / probe.PROBE_FILE).read_text()) == result

        named, direct = _run(manager, tiny_model_dir, "named", **probe.GENTLE, **head)
        assert named.probe == {}
        assert probed.metrics["after"] == named.metrics["after"]
        assert all(torch.equal(weights[key], direct[key]) for key in direct)  # probing left no trace
    finally:
        manager.close()


def test_a_probe_that_keeps_the_recipe_leaves_the_run_as_it_was(tmp_path, tiny_model_dir, toy_probe):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        probed, weights = _run(manager, tiny_model_dir, "probed", probe=True)  # a random model knows nothing
        assert probed.probe["changes"] == {} and probed.probe["before"] < probe.KNOWN_AP
        log = manager.logs("probed")[0]
        assert "probe: MultiSimilarityLoss 0.002 kept: the starting model has room to learn" in log
        assert probed.recipe["loss"] == "MultiSimilarityLoss"
        plain, direct = _run(manager, tiny_model_dir, "plain")
        assert probed.metrics["after"] == plain.metrics["after"]
        assert all(torch.equal(weights[key], direct[key]) for key in direct)
    finally:
        manager.close()


def test_a_resumed_run_takes_the_kept_choice_without_probing_again(tmp_path, tiny_model_dir, toy_probe):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        started = manager.start(toy_options(tiny_model_dir, run_name="again", epochs=1, probe=True))
        kept = probe.ProbeResult(probe.GENTLE_NAME, probe.GENTLE, 0.97, probe.KNOWN_AP, 9, 36, 1.0)
        probe.save_result(tmp_path / "home/runs/again", kept)
        record = manager.run_now(started.run_name)
        assert "already knows this data (average precision 0.97000 on 9 held-out" in manager.logs("again")[0]
        assert record.recipe["loss"] == "NTXentLoss" and record.probe == kept.to_dict()
    finally:
        manager.close()


def test_the_record_has_the_probe_and_its_recipe_before_training_ends(tmp_path, tiny_model_dir, toy_probe, monkeypatch):
    from tunerflow.runs import execute

    monkeypatch.setattr(probe, "KNOWN_AP", 0.0)

    def failing(*args, **kwargs):
        raise RuntimeError("training broke")

    monkeypatch.setattr(execute, "train", failing)
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        record = manager.run_now(manager.start(toy_options(tiny_model_dir, run_name="broken", probe=True)).run_name)
        assert record.status.value == "FAILED"
        saved = json.loads((tmp_path / "home/runs/broken/record.json").read_text())
        assert saved["probe"]["chosen"] == probe.GENTLE_NAME and saved["recipe"]["loss"] == "NTXentLoss"
    finally:
        manager.close()
