"""The publication gate: a worse run is not served by default; promote, rollback and the history of served artifacts."""

from __future__ import annotations

import pytest

from tests.training_helpers import toy_manager, toy_options
from tunerflow.artifact.publish import HISTORY, LATEST, ServeAction, read_history, read_latest, write_latest
from tunerflow.errors import ArtifactError, ConfigError
from tunerflow.runs import RunStatus
from tunerflow.runs.gate import decide

KEY = "model_average_precision"


def _metrics(before, after):
    return {"primary_metric": KEY, "before": {KEY: before}, "after": {KEY: after}}


def test_decide_by_policy():
    assert decide("if_better", _metrics(0.5, 0.6)).promote
    assert decide("if_better", _metrics(0.5, 0.5)).promote  # not below is enough
    worse = decide("if_better", _metrics(0.5, 0.4))
    assert not worse.promote and "below" in worse.reason and "/runs/promote" in worse.reason
    blind = decide("if_better", {"primary_metric": KEY, "before": None, "after": None})
    assert not blind.promote and "no evaluation set" in blind.reason
    kept = decide("if_better", {**_metrics(0.6, 0.4), "after_epoch": 2})
    assert "epoch 2's" in kept.reason and "nothing new is published" in kept.reason
    averaged = decide("if_better", {**_metrics(0.6, 0.4), "after_epoch": 2, "averaged": True})  # WiSE-FT
    assert not averaged.promote and "the WiSE-FT average's" in averaged.reason
    losses = {"primary_metric": KEY, "before": {"val_loss": 0.5}, "after": {"val_loss": 0.4}}  # no retrieval metric
    assert decide("if_better", losses).promote
    higher = decide("if_better", {**losses, "after": {"val_loss": 0.6}})
    assert not higher.promote and "val_loss 0.6000 is above 0.5000 before" in higher.reason
    assert decide("auto", _metrics(0.5, 0.1)).promote
    assert not decide("manual", _metrics(0.5, 0.9)).promote


@pytest.fixture
def scripted_metrics(monkeypatch):
    """Evaluation answers from a script: ``values[run]`` is (before, after each epoch), by run name."""
    import tunerflow.runs.execute as execute

    script: list[float] = []
    monkeypatch.setattr(execute, "evaluate", lambda embed, data, **options: {KEY: script.pop(0)})
    return script


def _run(manager, model_dir, name, script=None, values=(), **overrides):
    if script is not None:
        script.extend(values)
    manager.start(toy_options(model_dir, epochs=1, run_name=name, **overrides))
    return manager.run_now(name)


def test_a_worse_run_is_not_served_and_promote_and_rollback_work(tmp_path, tiny_model_dir, scripted_metrics):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    artifacts = tmp_path / "home/artifacts"
    good = _run(manager, tiny_model_dir, "good", scripted_metrics, (0.5, 0.6))
    assert good.status is RunStatus.FINISHED and good.promoted and "served" in good.details
    assert read_latest(artifacts).name == "good"

    worse = _run(manager, tiny_model_dir, "worse", scripted_metrics, (0.6, 0.4))  # default policy: if_better
    assert worse.status is RunStatus.FINISHED and worse.promoted is False
    assert "not promoted" in worse.details and "below" in worse.details
    assert read_latest(artifacts).name == "good"  # the served model stays
    assert (artifacts / "worse").is_dir()  # but the artifact is kept, and downloadable
    assert "not promoted" in manager.logs("worse")[0]

    answer = manager.promote("worse")
    assert answer["changed"] and answer["served"] == "worse" and read_latest(artifacts).name == "worse"
    assert manager.get("worse").promoted and "promoted" in manager.get("worse").details
    assert manager.promote("worse")["changed"] is False

    answer = manager.rollback()
    assert answer["served"] == "good" and read_latest(artifacts).name == "good"
    actions = [(e["artifact"], e["action"]) for e in answer["history"]]
    assert actions == [("good", "publish"), ("worse", "promote"), ("good", "rollback")]
    with pytest.raises(ArtifactError, match="first artifact served"):
        manager.rollback()
    manager.close()

    # The history survives a restart: a new manager over the same home sees it and can roll back through it.
    again = toy_manager(tmp_path / "home", start_worker=False)
    assert again.served()["history"] == answer["history"]
    assert again.get("worse").promoted
    again.promote("worse")
    assert again.rollback()["served"] == "good"
    again.close()


def test_policies_without_evaluation_and_manual(tmp_path, tiny_model_dir, scripted_metrics):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    blind = _run(manager, tiny_model_dir, "blind", eval_query_data=None, eval_index_data=None)
    assert blind.promoted is False and "no evaluation set" in blind.details
    assert read_latest(tmp_path / "home/artifacts") is None
    manual = _run(manager, tiny_model_dir, "manual", scripted_metrics, (0.1, 0.9), publish="manual")
    assert manual.promoted is False and "manual" in manual.details
    auto = _run(manager, tiny_model_dir, "auto", scripted_metrics, (0.9, 0.1), publish="auto")
    assert auto.promoted and read_latest(tmp_path / "home/artifacts").name == "auto"
    with pytest.raises(ConfigError, match="unknown publish"):
        manager.start(toy_options(tiny_model_dir, run_name="x", publish="sometimes"))
    manager.close()


def test_history_is_crash_safe_and_adopts_a_hand_written_latest(tmp_path):
    root = tmp_path / "artifacts"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
    write_latest(root, "a", run="a")
    with (root / HISTORY).open("ab") as handle:
        handle.write(b'{"time": "2026-01-01T00:00:00", "artifact": "b", "act')  # torn by a crash mid-line
    write_latest(root, "b", run="b")
    (root / LATEST).write_text("c\n")  # a hand edit (or a crash between LATEST and the history line)
    history = read_history(root)
    assert [(e.artifact, e.action) for e in history] == [
        ("a", ServeAction.PUBLISH),
        ("b", ServeAction.PUBLISH),
        ("c", ServeAction.ADOPT),
    ]
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        write_latest(root, "missing")
    with pytest.raises(ArtifactError):
        write_latest(root, "../a")


def test_small_data_without_evaluation_is_validated_and_a_worse_run_is_not_served(
    tmp_path, tiny_model_dir, monkeypatch
):
    from tunerflow.training.validation import ValidationLoss

    losses: list[float] = []
    monkeypatch.setattr(ValidationLoss, "__call__", lambda self: losses.pop(0))
    manager = toy_manager(tmp_path / "home", start_worker=False)
    artifacts = tmp_path / "home/artifacts"
    blind = {"eval_query_data": None, "eval_index_data": None, "data_aware": True}
    better = _run(manager, tiny_model_dir, "better", losses, (0.8, 0.5), **blind)  # val_loss before, after epoch 1
    split = next(c for c in better.data_aware if c["option"] == "val_split")
    assert split["changed"] and better.recipe["val_split"] == split["value"] > 0 and "small data" in split["reason"]
    assert better.promoted and read_latest(artifacts).name == "better"
    worse = _run(manager, tiny_model_dir, "worse", losses, (0.8, 0.9), **blind)
    assert worse.status is RunStatus.FINISHED and worse.promoted is False
    assert "val_loss 0.9000 is above 0.8000 before" in worse.details and "served model stays" in worse.details
    assert "nothing new is published" in manager.logs("worse")[0]
    assert read_latest(artifacts).name == "better"  # what is served did not change
    assert [e.artifact for e in read_history(artifacts)] == ["better"]
    manager.close()
