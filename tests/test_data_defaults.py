"""Data-aware defaults: a pure function of data statistics, and a run that logs its choices."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training_helpers import toy_manager, toy_options
from tunerflow.settings import section
from tunerflow.training.data_defaults import (
    CHOSEN,
    MANY_PAIRS_TEXTS,
    MAX_EPOCHS,
    SAMPLE_BUDGET,
    SMALL_DATA_TEXTS,
    TUNED_LEARNING_RATE,
    choose,
    data_statistics,
)

DEFAULTS = section("recipe")


def _choices(stats, given=(), evaluated=True, model_max=256, current=None):
    options = {**DEFAULTS, **(current or {})}
    return {c.option: c for c in choose(stats, options, given, evaluated=evaluated, model_max_length=model_max)}


def _banking_like():
    rng = np.random.default_rng(0)
    counts = rng.integers(80, 130, size=77)  # 77 intents of ~100 texts
    lengths = np.concatenate([rng.integers(6, 30, size=7000), [41] * 80, [60] * 20])  # p99 = 41
    return data_statistics(counts, lengths)


def test_banking_like_intents_keep_m_and_fit_max_length_to_the_texts():
    stats = _banking_like()
    assert stats.labels == 77 and not stats.pairs and stats.texts_per_label["median"] > 80
    choices = _choices(stats)
    assert set(choices) == set(CHOSEN)
    assert choices["max_length"].value == 48 and choices["max_length"].changed  # 41 rounded up to 8s
    assert "p99 of text length is 41 tokens" in choices["max_length"].describe()
    assert "0.3% of them are longer and truncated" in choices["max_length"].reason  # the 20 texts of 60 tokens
    m = choices["num_items_per_class"]
    assert m.value == DEFAULTS["num_items_per_class"] and not m.changed and "m 16 did not beat 4" in m.reason
    rate = choices["learning_rate"]
    assert rate.changed and rate.value == TUNED_LEARNING_RATE and "clusters of a median" in rate.reason
    assert choices["loss"].value == DEFAULTS["loss"] and not choices["loss"].changed
    assert "no measurement" in choices["loss"].reason
    epochs = choices["epochs"]  # ~8,000 texts: the 45,000-sample budget allows 45,000 / ~8,000 epochs
    assert epochs.changed and epochs.value == round(SAMPLE_BUDGET / stats.texts) and "small data" in epochs.reason
    # the rate was measured with the default loss only: with another loss it is kept
    other = {c.option: c for c in choose(stats, {**DEFAULTS, "loss": "TripletMarginLoss"}, (), evaluated=True,
                                          model_max_length=256)}  # fmt: skip
    assert (
        not other["learning_rate"].changed and "measured with MultiSimilarityLoss only" in other["learning_rate"].reason
    )
    assert not choices["val_split"].changed  # it has evaluation data


def test_statistics_go_into_a_response_struct():
    from google.protobuf.struct_pb2 import Struct

    stats = _banking_like()
    reply = Struct()
    reply.update({"data_statistics": stats.to_dict()})  # what /runs/start answers; a Struct takes string keys only
    assert reply["data_statistics"]["longer_than"]["40"] == stats.longer_than[40]


def test_quora_like_pairs_take_two_per_label():
    counts = np.array([2] * 800 + [3] * 150 + [5] * 50)
    stats = data_statistics(counts, np.full(2000, 17))
    assert stats.pairs and stats.pair_share == 0.8
    choices = _choices(stats)
    m = choices["num_items_per_class"]
    assert m.value == 2 and "pair data: 80% of the labels" in m.reason
    rate = choices["learning_rate"]
    assert rate.value == TUNED_LEARNING_RATE and rate.reason.startswith("pair data: 0.0001 gained more than 3e-05")
    epochs = choices["epochs"]  # 2,650 texts would get 10 epochs as clusters; pairs gained too little from them
    assert epochs.value == DEFAULTS["epochs"] and not epochs.changed and "pair data" in epochs.reason


def test_large_pair_data_keeps_config_m_and_rate():
    def pairs(texts: int, given=()) -> dict:
        counts = np.array([2] * (texts * 4 // 10) + [4] * (texts // 20))  # 80 % of the labels are pairs
        stats = data_statistics(counts, np.full(2000, 17))
        assert stats.pairs and stats.texts == texts
        return _choices(stats, given=given)

    large = pairs(MANY_PAIRS_TEXTS)
    m, rate = large["num_items_per_class"], large["learning_rate"]
    assert m.value == DEFAULTS["num_items_per_class"] and not m.changed and "m 4 at 3e-5 gained" in m.reason
    assert rate.value == DEFAULTS["learning_rate"] and not rate.changed and "(>= 10000)" in rate.reason
    assert large["probe"].value is True  # the probe still decides whether the model already knows the domain
    named = pairs(MANY_PAIRS_TEXTS, given={"num_items_per_class"})["probe"]  # the probe's recipe sets m: not probed
    assert named.value is False and "the run sets num_items_per_class" in named.reason
    small = pairs(MANY_PAIRS_TEXTS - 20)
    assert small["num_items_per_class"].value == 2 and small["learning_rate"].value == TUNED_LEARNING_RATE
    clusters = _choices(data_statistics(np.full(MANY_PAIRS_TEXTS // 4, 4), np.full(100, 10)))
    assert clusters["learning_rate"].value == TUNED_LEARNING_RATE  # the rule is for pairs only


def test_median_below_m_caps_m_and_long_texts_are_capped_at_the_model():
    stats = data_statistics(np.array([3] * 40 + [2] * 10), np.full(500, 700))
    choices = _choices(stats, model_max=256)
    assert choices["num_items_per_class"].value == 3  # clusters of 3: m = 3
    assert choices["max_length"].value == 256 and "capped at the model's 256" in choices["max_length"].reason


def test_tiny_data_without_evaluation_holds_out_labels_unless_too_few():
    stats = data_statistics(np.full(12, 20), np.full(240, 10))
    split = _choices(stats, evaluated=False)["val_split"]
    assert split.changed and split.value == pytest.approx(2 / 12, abs=1e-4) and "small data" in split.reason
    few = _choices(data_statistics(np.full(5, 8), np.full(40, 10)), evaluated=False)["val_split"]
    assert not few.changed and "too few" in few.reason
    large = data_statistics(np.full(200, SMALL_DATA_TEXTS // 100), np.full(100, 10))
    assert not _choices(large, evaluated=False)["val_split"].changed
    assert _choices(data_statistics(np.full(100, 20), np.full(100, 10)), evaluated=False)["val_split"].value == 0.1


def test_epochs_of_small_clusters_fill_the_sample_budget_between_the_default_and_the_cap():
    default = DEFAULTS["epochs"]

    def epochs(texts: int) -> int:
        return _choices(data_statistics(np.full(texts // 4, 4), np.full(100, 10)))["epochs"].value

    assert epochs(SAMPLE_BUDGET // default) == default  # the budget's own run: kept
    assert epochs(60_000) == default  # large data never trains for fewer epochs than config.yml says
    assert epochs(SAMPLE_BUDGET // 5) == 5
    assert epochs(400) == MAX_EPOCHS  # tiny data: capped
    many = _choices(data_statistics(np.full(100, 4), np.full(100, 10)), current={"epochs": MAX_EPOCHS + 5})
    assert many["epochs"].value == MAX_EPOCHS + 5  # the cap never cuts config.yml's own epochs
    assert "epochs" not in _choices(data_statistics(np.full(100, 4), np.full(100, 10)), given={"epochs"})


def test_given_options_are_left_alone():
    choices = _choices(_banking_like(), given={"max_length", "loss", "val_split"})
    assert not {"max_length", "loss", "val_split"} & set(choices)


def test_a_run_logs_its_choices_and_an_explicit_option_wins(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path / "home", start_worker=False)
    options = toy_options(tiny_model_dir, epochs=1, run_name="aware", data_aware=True)
    del options["max_length"], options["num_items_per_class"]  # left to the data; batch_size 24 stays given
    record = manager.start({**options, "learning_rate": 1e-3})
    chosen = {c["option"]: c for c in record.data_aware}
    assert "learning_rate" not in chosen and record.recipe["learning_rate"] == 1e-3  # the user's value wins
    assert "batch_size" not in chosen
    toy_p99 = record.data_statistics["token_lengths"]["p99"]
    assert chosen["max_length"]["value"] == record.recipe["max_length"] == 8 * int(np.ceil(toy_p99 / 8))
    assert record.recipe["max_length"] != DEFAULTS["max_length"]
    record = manager.run_now("aware")
    log = manager.logs("aware")[0]
    assert f"data-aware: max_length {record.recipe['max_length']} (p99 of text length is" in log
    assert "data-aware: loss MultiSimilarityLoss kept" in log and "data-aware: learning_rate" not in log

    plain = manager.start(toy_options(tiny_model_dir, epochs=1, run_name="plain", data_aware=False))
    assert plain.data_aware == [] and plain.recipe["max_length"] == 16
    manager.close()
