"""The reference tool's local names: login/get_token, cos_sim, get_model's keywords, build_model, models, callbacks."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tunerflow
from tests.conftest import TEXTS
from tunerflow.errors import ConfigError, DataError, ModelNotAvailableError

NEW_NAMES = (
    "login get_token get_run list_runs delete_run delete_runs create_experiment get_experiment list_experiments "
    "delete_experiment delete_experiments Experiment describe_models list_models list_callbacks cos_sim build_model "
    "create_run notebook_login connect list_model_options"
).split()


def test_the_reference_names_are_exported():
    assert set(NEW_NAMES) <= set(tunerflow.__all__)
    for name in NEW_NAMES:
        assert callable(getattr(tunerflow, name)), name


def test_login_and_get_token_need_no_account_and_warn_once(monkeypatch):
    from tunerflow.client import account

    monkeypatch.setattr(account, "_warned", False)
    monkeypatch.delenv("TUNERFLOW_API_KEY", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tunerflow.login()
        tunerflow.login(force=True, interactive=False)
        assert tunerflow.get_token() is None
    assert len(caught) == 1 and "needs no login" in str(caught[0].message) and "api_key=" in str(caught[0].message)
    monkeypatch.setenv("TUNERFLOW_API_KEY", "key-in-use-0123456789")
    assert tunerflow.get_token() == "key-in-use-0123456789"


def test_cos_sim_on_hand_checked_cases():
    assert tunerflow.cos_sim([1, 0], [1, 1]) == pytest.approx(2**-0.5)
    assert tunerflow.cos_sim(np.array([2.0, 0]), np.array([-3.0, 0])) == pytest.approx(-1.0)
    assert isinstance(tunerflow.cos_sim([1, 0], [0, 1]), float)
    np.testing.assert_allclose(tunerflow.cos_sim([[1, 0], [0, 2]], [[3, 0], [1, 1], [0, 0]]),
                               [[1, 2**-0.5, 0], [0, 2**-0.5, 0]], atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(tunerflow.cos_sim([1, 0], [[1, 0], [0, 5]]), [1, 0], atol=1e-12)
    with pytest.raises(DataError, match="one length"):
        tunerflow.cos_sim([1, 0, 0], [1, 0])


def test_get_model_takes_the_reference_keywords(tiny_model_dir):
    logger = logging.getLogger("tunerflow")
    level = logger.level
    try:
        model = tunerflow.get_model(tiny_model_dir, "some-token", 7, None, None, "ERROR")  # the reference order
        assert model.batch_size == 7 and logger.level == logging.ERROR
    finally:
        logger.setLevel(level)
    assert (
        tunerflow.get_model(tiny_model_dir, token="t", select_model="model", is_onnx=False).embed(TEXTS).shape[1] == 32
    )
    with pytest.raises(ConfigError, match="holds one text model"):
        tunerflow.get_model(tiny_model_dir, select_model="clip-text")
    with pytest.raises(ConfigError, match="unknown logging_level"):
        tunerflow.get_model(tiny_model_dir, logging_level="LOUD")


def test_build_model_from_the_catalogue(tiny_model_dir, tmp_path_factory):
    name = tiny_model_dir.resolve().relative_to(tmp_path_factory.getbasetemp().resolve()).as_posix()
    built = tunerflow.build_model(name)  # the tests' temporary directory is a model root (conftest)
    np.testing.assert_allclose(built.embed(TEXTS), tunerflow.get_model(tiny_model_dir).embed(TEXTS), atol=1e-6)
    cls = tunerflow.build_model(name, model_options={"pooling": "cls"})
    assert not np.allclose(cls.embed(TEXTS), built.embed(TEXTS))
    aliased = tunerflow.build_model(name, model_options={"pooler": "cls", "max_seq_length": 8})  # fit's names
    np.testing.assert_allclose(
        aliased.embed(TEXTS),
        tunerflow.build_model(name, model_options={"pooling": "cls", "max_length": 8}).embed(TEXTS),
    )
    with pytest.raises(ConfigError, match="unknown model option"):
        tunerflow.build_model(name, model_options={"dropout": 0.1})
    with pytest.raises(ModelNotAvailableError, match="hf download bert-base-cased"):
        tunerflow.build_model("bert-base-cased")


def test_models_are_described_from_the_local_catalogue(capsys):
    tunerflow.describe_models()
    table = capsys.readouterr().out
    assert "all-MiniLM-L6-v2" in table and "BertModel" in table and "384" in table
    tunerflow.describe_models(task="text-to-text")
    assert "all-MiniLM-L6-v2" in tunerflow.list_models()
    bundled = next(m for m in tunerflow.list_models(details=True) if m["source"] == "bundled")
    assert bundled["dimension"] == 384 and 20e6 < bundled["parameters"] < 25e6 and bundled["size"] > 80e6
    with pytest.raises(ConfigError, match="text embedding models only"):
        tunerflow.describe_models(task="text-to-image")
    answer = subprocess.run([sys.executable, "-m", "tunerflow.cli", "models"], capture_output=True, text=True)
    assert answer.returncode == 0 and "all-MiniLM-L6-v2" in answer.stdout and "BertModel" in answer.stdout


def test_list_callbacks_lists_the_callback_module():
    from tunerflow import callback

    listed = tunerflow.list_callbacks()
    reference = {"BestModelCheckpoint", "EarlyStopping", "EvaluationCallback", "TrainingCheckpoint", "WiSEFTCallback"}
    assert reference <= set(listed) and listed["EvaluationCallback"] is callback.EvaluationCallback
    assert all(isinstance(value, type) and value.__module__ == callback.__name__ for value in listed.values())


def test_the_reference_tools_other_names():
    assert tunerflow.create_run is tunerflow.fit
    options = tunerflow.list_model_options()
    assert set(options) == set(tunerflow.list_models())
    assert [o["name"] for o in options["all-MiniLM-L6-v2"]] == ["pooling", "max_length"]
    from tunerflow.client import account

    account._warned = False
    with pytest.warns(UserWarning, match="needs no login"):
        tunerflow.notebook_login()
    tunerflow.connect()  # warned once already: quiet
