"""The reference tool's callbacks and data rules: each callback's option reaches the run and changes it.

Runs use the tiny random BERT and the toy task of ``training_helpers`` (seconds each).
"""

from __future__ import annotations

import importlib
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.test_options import RecordingConnection
from tests.training_helpers import toy_manager, toy_options, toy_records
from tunerflow.callback import (
    BestModelCheckpoint,
    EarlyStopping,
    EvaluationCallback,
    TrainingCheckpoint,
    WandBLogger,
    WiSEFTCallback,
)
from tunerflow.client import fit
from tunerflow.data import CSVOptions, read_csv
from tunerflow.errors import ConfigError
from tunerflow.evaluation import EvaluationSet, evaluate
from tunerflow.training.selection import Selection
from tunerflow.training.state import TrainState
from tunerflow.training.weights import interpolate_weights

log = logging.getLogger("test")
LABELLED = [("a", 1), ("b", 1), ("c", 2), ("d", 2)]


@pytest.fixture
def connection(monkeypatch):
    RecordingConnection.made = []
    monkeypatch.setattr(importlib.import_module("tunerflow.client.fit"), "Connection", RecordingConnection)
    return RecordingConnection


def _sent(connection) -> dict:
    return connection.made[-1].calls[-1][1]


def test_each_callback_becomes_its_run_options(connection):
    import tunerflow
    from tunerflow import callback as module

    assert tunerflow.EvaluationCallback is EvaluationCallback is module.EvaluationCallback
    fit(
        train_data=LABELLED,
        eval_data=LABELLED,
        run_name="cb",
        callbacks=[
            EvaluationCallback(LABELLED, batch_size=7, exclude_self=False, limit=5, distance="euclidean"),
            BestModelCheckpoint(monitor="val_loss", mode="min"),
            EarlyStopping(monitor="val_loss", patience=3, min_delta=0.01, baseline=2.5),
            TrainingCheckpoint(last_k_epochs=2),
            WiSEFTCallback(alpha=0.3),
        ],
    )
    sent = _sent(connection)
    expected = {
        "eval_batch_size": 7, "eval_exclude_self": False, "eval_limit": 5, "eval_distance": "euclidean",
        "keep_best": True, "monitor": "val_loss", "monitor_mode": "min", "early_stopping_patience": 3,
        "early_stopping_min_delta": 0.01, "early_stopping_baseline": 2.5, "keep_checkpoints": 2,
        "wiseft_alpha": 0.3, "eval_data": "cb-eval", "eval_query_data": "cb-query",
    }  # fmt: skip
    assert {key: sent[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("callbacks", "options", "message"),
    [
        ([BestModelCheckpoint()], {}, "monitor val_loss needs validation data"),
        ([EarlyStopping(monitor="average_precision")], {}, "early_stopping_patience stops by evaluation"),
        ([BestModelCheckpoint("val_loss"), EarlyStopping("train_loss")], {"val_split": 0.5}, "disagree on monitor"),
        ([EvaluationCallback(LABELLED, distance="manhattan")], {}, "unknown eval_distance 'manhattan'"),
        ([WiSEFTCallback(alpha=1.5)], {}, "wiseft_alpha must be at most 1"),
        ([TrainingCheckpoint(last_k_epochs=0)], {}, "keep_checkpoints must be at least 1"),
        ([EvaluationCallback(LABELLED), EvaluationCallback(LABELLED)], {}, "given twice"),
        ([object()], {}, "unsupported callback"),
        ([EvaluationCallback(LABELLED, limit=5)], {"eval_limit": 6}, "eval_limit is given as 6 and by a callback"),
    ],
)
def test_callbacks_are_refused_before_uploading(connection, callbacks, options, message):
    with pytest.raises(ConfigError, match=message):
        fit(train_data=LABELLED, run_name="bad", callbacks=callbacks, **options)
    assert connection.made == []


def test_wandb_logger_says_it_is_not_available():
    with pytest.raises(ConfigError, match="wandb is not installed"):
        WandBLogger(wandb_args={"mode": "offline"})


@pytest.mark.parametrize(("mode", "best"), [("min", 2), ("max", 3), ("auto", 2)])
def test_best_model_checkpoint_monitor_and_mode_pick_the_epoch(mode, best):
    losses = iter([1.0, 0.8, 0.5, 0.9])  # before, then epochs 1..3
    minimise = mode != "max"  # auto: a loss goes down
    selection = Selection(lambda: {"val_loss": next(losses)}, "val_loss", log, minimise=minimise)
    setup, state = SimpleNamespace(recipe=SimpleNamespace(epochs=3)), TrainState(steps_per_epoch=[1] * 3)
    selection.before(state)
    for epoch in (1, 2, 3):
        state.epoch = epoch
        selection.after_epoch(setup, state)
    assert state.best_epoch == best


@pytest.mark.parametrize(("min_delta", "baseline", "stops_after"), [(0.0, None, None), (0.2, None, 2), (0.0, 0.1, 1)])
def test_early_stopping_min_delta_and_baseline(min_delta, baseline, stops_after):
    losses = iter([1.0, 0.8, 0.7, 0.6, 0.5])  # improves by 0.1 an epoch
    selection = Selection(
        lambda: {"val_loss": next(losses)}, "val_loss", log, patience=1, minimise=True,
        min_delta=min_delta, baseline=baseline,
    )  # fmt: skip
    setup, state = SimpleNamespace(recipe=SimpleNamespace(epochs=4)), TrainState(steps_per_epoch=[1] * 4)
    selection.before(state)
    for epoch in (1, 2, 3, 4):
        state.epoch = epoch
        selection.after_epoch(setup, state)
        if state.stop_reason:
            break
    assert (state.epoch if state.stop_reason else None) == stops_after


def test_evaluation_distance_and_exclude_self_change_the_metrics():
    vectors = {"q": [1.0, 0.0], "near-long": [10.0, 1.0], "short-off": [0.9, 0.5]}
    data = EvaluationSet(
        query_ids=["q"], query_texts=["q"], query_labels=["x"],
        index_ids=["a", "b"], index_texts=["near-long", "short-off"], index_labels=["x", "y"],
    )  # fmt: skip

    def embed(texts):
        return np.array([vectors[t] for t in texts])

    cosine = evaluate(embed, data, limit=1)["model_reciprocal_rank"]
    euclidean = evaluate(embed, data, limit=1, distance="euclidean")["model_reciprocal_rank"]
    squared = evaluate(embed, data, limit=1, distance="sqeuclidean")["model_reciprocal_rank"]
    assert (cosine, euclidean, squared) == (1.0, 0.0, 0.0)  # cosine: the long vector; euclidean: the short one
    own = EvaluationSet(query_ids=["a", "b"], query_texts=["q", "short-off"], query_labels=["x", "y"])
    assert evaluate(embed, own, limit=1)["model_reciprocal_rank"] == 0.0  # each query's only match is another label
    assert evaluate(embed, own, limit=1, exclude_self=False)["model_reciprocal_rank"] == 1.0  # itself


def test_wiseft_interpolates_with_the_starting_weights():
    model = torch.nn.Linear(2, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    interpolate_weights(model, start, 0.25)
    torch.testing.assert_close(model.weight, 0.25 * tuned["weight"] + 0.75 * start["weight"])
    interpolate_weights(model, start, 0.0)
    assert torch.equal(model.weight, start["weight"])


def _run(manager, options):
    record = manager.start(options)
    return manager.run_now(record.run_name)


def test_val_split_early_stopping_and_kept_checkpoints_in_a_run(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        # a baseline no loss reaches: no epoch improves, so patience 2 stops after epoch 2 of 5
        options = toy_options(
            tiny_model_dir, epochs=5, val_split=0.25, monitor="val_loss", early_stopping_patience=2,
            early_stopping_baseline=-1.0, keep_checkpoints=2, eval_query_data=None, eval_index_data=None,
        )  # fmt: skip
        record = _run(manager, options)
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    metrics = record.metrics
    assert metrics["stop_reason"] == "early stopping" and [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert all(e["metrics"]["val_loss"] > 0 for e in metrics["epochs"]) and "val_loss" in metrics["before"]
    assert metrics["steps"] < metrics["total_steps"]
    kept = sorted(p.name for p in (tmp_path / "runs" / record.run_name).glob("checkpoint-epoch-*"))
    assert kept == ["checkpoint-epoch-1", "checkpoint-epoch-2"]


def test_wiseft_alpha_zero_publishes_the_starting_weights_and_eval_batch_size_is_used(
    tmp_path, tiny_model_dir, monkeypatch
):
    from tunerflow.artifact import load_model
    from tunerflow.runs import execute

    sizes = []

    class Spy(execute.TorchBackend):
        def __init__(self, *args, **kwargs):
            sizes.append(kwargs["batch_size"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(execute, "TorchBackend", Spy)
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        record = _run(manager, toy_options(tiny_model_dir, epochs=1, wiseft_alpha=0.0, eval_batch_size=5))
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    assert sizes == [5]
    published = load_file(f"{record.artifact}/model.safetensors")
    start = {f"backbone.{k}": v for k, v in load_model(tiny_model_dir).model.backbone.state_dict().items()}
    start = start if set(start) <= set(published) else load_model(tiny_model_dir).model.backbone.state_dict()
    assert all(torch.equal(published[k], start[k]) for k in start if k in published)
    assert sum(k in published for k in start) > 10
    # the published average (here the starting model) is evaluated again: "after" and the gate describe it
    metrics = record.metrics
    assert metrics["averaged"] and metrics["after"] == metrics["before"]


def test_pair_csv_is_pairs_and_trains_with_an_in_batch_negatives_loss(connection, tmp_path, caplog):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("how to cook rice,boil the rice\nhow to cook rice,rice cooker tips\nbest tea,green tea\n")
    records = list(read_csv(pairs, CSVOptions()))
    assert [(r.text, r.label) for r in records] == [
        ("how to cook rice", "pair-0"), ("boil the rice", "pair-0"), ("rice cooker tips", "pair-0"),
        ("best tea", "pair-1"), ("green tea", "pair-1"),
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        fit(train_data=str(pairs), run_name="pairs")
    sent = _sent(connection)
    assert (sent["loss"], sent["miner"], sent["loss_options"]) == ("NTXentLoss", "none", {"temperature": 0.05})
    assert connection.made[-1].uploads == [("pairs-train", 5)]
    assert "pair data: training with NTXentLoss" in caplog.text
    # is_labeled decides; a text,label header marks a labelled CSV; a given loss is kept
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("text,label\na,1\nb,1\nc,2\nd,2\n")
    for data, csv_options in ((str(pairs), CSVOptions(is_labeled=True)), (str(labelled), None)):
        fit(train_data=data, run_name="labelled", csv_options=csv_options)
        assert "loss" not in _sent(connection)  # config.yml's loss
    assert connection.made[-1].uploads == [("labelled-train", 4)]
    fit(train_data=[("q1", "d1"), ("q2", "d2")], csv_options=CSVOptions(), run_name="list", loss="TripletMarginLoss")
    assert _sent(connection)["loss"] == "TripletMarginLoss" and connection.made[-1].uploads == [("list-train", 4)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"convert_to_blob": False}, "image and mesh"), ({"point_cloud_size": 10}, "image and mesh"),
     ({"dialect": "nope"}, "unknown CSV dialect"), ({"sampling_rate": 2}, "sampling_rate"), ({"size": 0}, "size")],
)  # fmt: skip
def test_csv_options_refuse_what_text_cannot_use(fields, message):
    with pytest.raises(ConfigError, match=message):
        CSVOptions(**fields)


def test_a_pair_run_trains_with_the_pair_loss(tmp_path, tiny_model_dir):
    from tunerflow.client.fit import PAIR_LOSS
    from tunerflow.data import pairs_to_records

    rows = toy_records(240, seed=5, prefix="p")
    pairs = [(a.text, b.text, f"r{i}", "x") for i, (a, b) in enumerate(zip(rows[::2], rows[1::2], strict=True))]
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        manager.append("pairs", pairs_to_records(pairs))
        record = _run(manager, toy_options(tiny_model_dir, train_data="pairs", epochs=1, **PAIR_LOSS))
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    assert record.recipe["loss"] == "NTXentLoss" and record.recipe["miner"] == "none"
    assert record.metrics["epoch_losses"][0] > 0


def test_fit_says_which_defaults_differ_from_the_reference(connection, caplog):
    guide = dict(loss="TripletMarginLoss", miner="TripletMarginMiner", optimizer="Adam", learning_rate=1e-5,
                 epochs=3, batch_size=128)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        fit("all-MiniLM-L6-v2", LABELLED, run_name="guide", **guide)
    (line,) = [r.getMessage() for r in caplog.records if "differ from Finetuner" in r.getMessage()]
    for part in ("weight_decay", "scheduler linear with warmup_ratio 0.1", "max_length 64", "keep_best True",
                 "precision auto (Finetuner: fp32)"):  # fmt: skip
        assert part in line, part
    for given in ("miner MultiSimilarityMiner", "optimizer AdamW", "epochs 3"):
        assert given not in line, given
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        fit(train_data=LABELLED, run_name="all", optimizer_options={}, scheduler="none", max_length=128,
            keep_best=False, precision="fp32", **guide)  # fmt: skip
    assert "differ from Finetuner" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        fit(train_data=LABELLED, run_name="aware", data_aware=True, **{**guide, "learning_rate": None, "loss": None})
    (line,) = [r.getMessage() for r in caplog.records if "differ from Finetuner" in r.getMessage()]
    assert "max_length chosen from the data (data_aware), else max_length 64" in line
    assert "learning_rate chosen from the data (data_aware), else learning_rate" in line
    assert "loss chosen from the data" not in line and "loss MultiSimilarityLoss (Finetuner" in line  # no rule


def test_fit_and_encode_take_any_doclist_with_text(connection, tiny_model_dir):
    from docarray import BaseDoc, DocList

    from tunerflow.api import encode, get_model

    class Question(BaseDoc):
        text: str
        label: int = 0

    docs = DocList[Question]([Question(text=t, label=i // 2) for i, t in enumerate("a b c d".split())])
    fit(train_data=docs, run_name="docs")
    assert connection.made[-1].uploads == [("docs-train", 4)]

    class Plain(BaseDoc):
        text: str
        embedding: object = None

    model = get_model(tiny_model_dir)
    plain = encode(model, DocList[Plain]([Plain(text="how do cats learn")]))
    vectors = encode(model, ["how do cats learn"])
    np.testing.assert_allclose(np.asarray(plain[0].embedding), vectors[0], atol=1e-6)
