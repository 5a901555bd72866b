"""The model catalogue: clients name models from it; other server paths are refused, existing or not."""

from __future__ import annotations

import shutil

import pytest

from tests.training_helpers import toy_manager, toy_options
from tunerflow.errors import ModelNotAvailableError
from tunerflow.modeling.catalogue import ROOTS_VARIABLE, Catalogue, describe_models


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(tiny_model_dir, root / "tiny")
    shutil.copytree(tiny_model_dir, root / "team" / "tiny-two")
    (root / "notes").mkdir()  # no model files: not offered
    return root


def _refusal(catalogue: Catalogue, name: str) -> str:
    with pytest.raises(ModelNotAvailableError) as refused:
        catalogue.resolve(name)
    return str(refused.value)


def test_names_and_paths_under_a_root_resolve(root):
    catalogue = Catalogue(roots=(root.resolve(),))
    assert catalogue.resolve("tiny").path == (root / "tiny").resolve()
    assert catalogue.resolve("team/tiny-two").path == (root / "team/tiny-two").resolve()
    assert catalogue.resolve(str(root / "tiny")).path == (root / "tiny").resolve()
    assert catalogue.resolve("all-MiniLM-L6-v2").name == "sentence-transformers/all-MiniLM-L6-v2"


def test_other_paths_are_refused_alike_whether_they_exist_or_not(root, tiny_model_dir, tmp_path):
    catalogue = Catalogue(roots=((root / "team").resolve(),))
    existing = _refusal(catalogue, str(tiny_model_dir))  # a real model, outside the roots
    missing = _refusal(catalogue, str(tmp_path / "no-such-model"))
    assert existing.replace(str(tiny_model_dir), "X") == missing.replace(str(tmp_path / "no-such-model"), "X")
    assert "not in this server's catalogue" in existing and "tiny-two" in existing
    assert str(root) not in existing  # no server path but the client's own words
    for sneaky in ("team/../tiny", "../tiny", str(root / "team/../tiny"), "notes", str(root / "team")):
        assert "not in this server's catalogue" in _refusal(catalogue, sneaky)


def test_allow_paths_and_trusted_settings_take_any_path(tiny_model_dir):
    assert Catalogue(allow_paths=True).resolve(str(tiny_model_dir)).path == tiny_model_dir.resolve()
    assert Catalogue().resolve(str(tiny_model_dir), trusted=True).path == tiny_model_dir.resolve()


def test_roots_from_config_and_environment(root, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNERFLOW_HOME", str(tmp_path))
    (tmp_path / "mine").mkdir()
    catalogue = Catalogue.from_settings(
        {"roots": ["mine"], "allow_paths": False}, environ={ROOTS_VARIABLE: f"{root}:{root}"}
    )
    assert catalogue.roots == ((tmp_path / "mine").resolve(), root.resolve())


def test_describe_models_lists_name_architecture_dimension_size(root, monkeypatch):
    monkeypatch.setenv(ROOTS_VARIABLE, str(root))
    listed = {entry["name"]: entry for entry in describe_models()}
    assert listed["all-MiniLM-L6-v2"]["source"] == "bundled" and listed["all-MiniLM-L6-v2"]["dimension"] == 384
    tiny = listed["tiny"]
    assert (tiny["source"], tiny["architecture"], tiny["dimension"]) == ("root", "BertModel", 32)
    assert tiny["size"] > 10_000 and "team/tiny-two" in listed and "notes" not in listed


def test_the_tuner_refuses_a_run_on_a_model_outside_the_catalogue(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.delenv(ROOTS_VARIABLE)
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        with pytest.raises(ModelNotAvailableError, match="not in this server's catalogue"):
            manager.start(toy_options(tiny_model_dir, run_name="outside"))
        assert manager.list() == []
    finally:
        manager.close()
