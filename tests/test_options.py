"""Every declared run option through config.yml, the request model, the recipe and the CLI; fit refuses
bad values before it uploads anything."""

from __future__ import annotations

import argparse
import importlib

import pytest
from pydantic import ValidationError

from tunerflow.client import EvaluationCallback, fit
from tunerflow.errors import ConfigError
from tunerflow.serving.tuner_params import RunParameters
from tunerflow.settings import section
from tunerflow.training.option_spec import Option
from tunerflow.training.recipe import Recipe

OPTIONS = Recipe.options()
WRONG_KIND = {bool: 1, int: 2.5, float: "0.5", str: 5, dict: "x"}  # an enum option gets the str's


def _id(option: Option) -> str:
    return option.name


def bad_values(option: Option) -> list:
    """Values the declaration refuses: the wrong kind, outside a bound, outside the closed set."""
    values = [WRONG_KIND.get(option.kind, 5)]
    if option.kind is int or option.kind is float:
        values.append(True)  # a bool is no number
    if option.choices:
        values.append("no-such-choice")
    if option.dataset:
        values.append("../elsewhere")
    if option.minimum is not None:
        values.append(option.minimum if option.above else option.minimum - 1)
    if option.maximum is not None:
        values.append(option.maximum if option.below else option.maximum + 1)
    return values


def test_config_yml_has_a_default_for_every_declared_option_and_nothing_else():
    defaults = section("recipe")
    assert set(defaults) == {option.name for option in OPTIONS if not option.per_run}
    for option in OPTIONS:
        if not option.per_run:
            option.parse(defaults[option.name])  # each default is valid by its own declaration
    assert [option.name for option in OPTIONS if option.per_run and option.required] == ["train_data"]


@pytest.mark.parametrize("option", OPTIONS, ids=_id)
def test_request_model_and_recipe_refuse_with_the_declared_message(option):
    assert option.name in RunParameters.__fields__
    assert RunParameters.schema()["properties"][option.name]["description"] == option.describe()
    for bad in bad_values(option):
        with pytest.raises(ConfigError) as declared:
            option.parse(bad)
        message = str(declared.value)
        assert option.name in message, message
        with pytest.raises(ValidationError) as refused:
            RunParameters(**{"train_data": "t", option.name: bad})
        assert message in str(refused.value), bad
        with pytest.raises(ConfigError) as recipe:
            Recipe.from_options(section("recipe"), {"train_data": "t", option.name: bad})
        assert str(recipe.value) == message, bad


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.minimum is not None or o.maximum is not None], ids=_id)
def test_bounds_themselves_are_kept_where_inclusive(option):
    kind = float if option.kind is float else int
    for bound, exclusive in ((option.minimum, option.above), (option.maximum, option.below)):
        if bound is not None and not exclusive:
            assert option.parse(kind(bound)) == bound


def test_no_number_is_unbounded():
    for option in OPTIONS:
        if option.kind in (int, float):
            assert option.minimum is not None and option.maximum is not None, option.name


def _fit_parser() -> argparse.ArgumentParser:
    from tunerflow.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["fit"]


def _cli_sample(option: Option) -> tuple[list[str], object]:
    flag = "--" + option.name.replace("_", "-")
    if option.kind is bool:
        return [flag], True
    if option.choices:
        return [flag, option.choices[-1]], option.choices[-1]
    return {
        int: ([flag, "3"], 3),
        float: ([flag, "0.25"], 0.25),
        dict: ([flag, "{margin: 0.1}"], {"margin": 0.1}),
        str: ([flag, "some-value"], "some-value"),
    }[option.kind]


@pytest.mark.parametrize("option", [o for o in OPTIONS if not o.dataset], ids=_id)
def test_cli_has_a_flag_for_every_option(option):
    parser = _fit_parser()
    argv, expected = _cli_sample(option)
    parsed = getattr(parser.parse_args(["train.csv", *argv]), option.name)
    assert parsed == expected and type(parsed) is type(expected)
    assert getattr(parser.parse_args(["train.csv"]), option.name) is None  # not given: config.yml decides
    action = next(a for a in parser._actions if a.dest == option.name)
    assert action.help == option.describe().replace("%", "%%")
    if option.choices:
        assert tuple(action.choices) == option.choices
    if option.kind is bool:
        assert getattr(parser.parse_args(["train.csv", "--no-" + argv[0][2:]]), option.name) is False


class RecordingConnection:
    """Stands in for the Flow: records what fit would upload and call."""

    made: list[RecordingConnection] = []

    def __init__(self, host: str | None = None, api_key: str | None = None) -> None:
        self.host, self.uploads, self.calls = host, [], []
        RecordingConnection.made.append(self)

    def upload(self, name, docs, chunk_size=None, on_chunk=None) -> dict:
        self.uploads.append((name, len(list(docs))))
        return {"documents": self.uploads[-1][1]}

    def call(self, endpoint: str, parameters: dict | None = None, target: str = "tuner") -> dict:
        self.calls.append((endpoint, parameters))
        return {"status": "CREATED", "details": "queued"}


@pytest.fixture
def connection(monkeypatch):
    RecordingConnection.made = []
    # tunerflow.client.fit is also the name of the function: patch the module itself.
    monkeypatch.setattr(importlib.import_module("tunerflow.client.fit"), "Connection", RecordingConnection)
    return RecordingConnection


PAIRS = [("a", 1), ("b", 1), ("c", 2), ("d", 2)]


def test_fit_sends_checked_values_when_they_are_good(connection):
    fit(train_data=PAIRS, callbacks=[EvaluationCallback(PAIRS)], run_name="good", epochs=2.0, scheduler="cosine",
        early_stopping_patience=1)  # fmt: skip
    (made,) = connection.made
    assert made.uploads == [("good-train", 4), ("good-query", 4)]
    endpoint, parameters = made.calls[-1]
    assert endpoint == "/runs/start" and parameters["epochs"] == 2 and type(parameters["epochs"]) is int
    assert parameters["scheduler"] == "cosine" and type(parameters["scheduler"]) is str  # plain on the wire
    assert parameters["eval_query_data"] == "good-query"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scheduler": "nope"}, "unknown scheduler 'nope'; choose one of: linear, cosine, constant"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"epochs": 10**9}, "epochs must be at most 1000"),
        ({"batch_size": 10**9}, "batch_size must be at most 65536"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"loss": "TripletMarginLoss", "loss_options": {"margn": 0.1}}, "unknown option.*margn.*valid: .*margin"),
        ({"loss_options": {"alpha": "x"}}, "option alpha of loss MultiSimilarityLoss must be a number"),
        ({"miner_options": {"epsilon": "x"}}, "option epsilon of miner MultiSimilarityMiner must be a number"),
        ({"optimizer": "Adamm"}, "unknown optimizer 'Adamm'"),
        ({"loss_options": {"distance": "Cosine"}}, "unknown distance 'Cosine'"),
        ({"batch_size": 6, "num_items_per_class": 4}, "too small for num_items_per_class 4"),
        ({"early_stopping_patience": 2}, "early_stopping_patience stops by evaluation"),
        ({"lernrate": 0.1}, "extra fields not permitted"),
        (
            {"model_options": {"dropout": 0.1}},
            "unknown model option.*dropout; valid: pooling, pooler, max_length, max_seq_length",
        ),
        ({"model_options": {"pooler": "GeM"}}, "model_options pooler: unknown pooling 'GeM'"),
        ({"model_options": {"max_seq_length": 1}}, "model_options max_seq_length: max_length must be at least 2"),
        ({"max_length": 32, "model_options": {"max_length": 64}}, "max_length is 32 and model_options says"),
        ({"pooling": "cls", "model_options": {"pooler": "mean"}}, "pooling is cls and model_options says mean"),
    ],
)
def test_fit_refuses_a_bad_value_before_uploading(connection, options, message):
    with pytest.raises(ConfigError, match=message):
        fit(train_data=PAIRS, run_name="bad", **options)
    assert connection.made == []  # not even connected: nothing was uploaded


def test_model_options_set_pooling_and_max_length():
    recipe = Recipe.from_options(
        section("recipe"), {"train_data": "t", "model_options": {"pooler": "cls", "max_seq_length": 32}}
    )
    assert (recipe.pooling.value, recipe.max_length) == ("cls", 32)
    recipe.validate()  # a stored recipe is validated again: the same
    assert (recipe.pooling.value, recipe.max_length) == ("cls", 32)


def test_cli_fit_refuses_a_bad_value_before_uploading(connection, capsys, tmp_path):
    from tunerflow.cli.main import main

    train = tmp_path / "train.csv"
    train.write_text("a,1\nb,1\nc,2\nd,2\n")
    assert main(["fit", str(train), "--epochs", "1000000000"]) == 2
    assert "epochs must be at most 1000" in capsys.readouterr().err
    assert connection.made == []
    assert main(["fit", str(train), "--epochs", "2", "--scheduler", "constant", "--set", "seed=7"]) == 0
    (_, parameters) = connection.made[0].calls[0]
    assert (parameters["epochs"], parameters["scheduler"], parameters["seed"]) == (2, "constant", 7)
