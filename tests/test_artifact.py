"""The artifact: round trip, zip, sentence-transformers compatibility and damage detection."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import numpy as np
import pytest

from tests.conftest import TEXTS
from tunerflow.api import get_model
from tunerflow.artifact import load_artifact, load_model, save_artifact
from tunerflow.errors import ArtifactError


@pytest.fixture(scope="module")
def artifact_dir(tiny_model_dir, tmp_path_factory):
    loaded = load_model(tiny_model_dir, normalize=True, max_length=24)
    return save_artifact(loaded, tmp_path_factory.mktemp("art") / "model", run={"run_name": "r1"}, zip=True)


def test_round_trip_keeps_spec_and_embeddings(artifact_dir, tiny_model_dir):
    reloaded = load_artifact(artifact_dir)
    assert reloaded.spec.max_length == 24 and reloaded.spec.normalize
    original = get_model(tiny_model_dir, normalize=True, max_length=24).embed(TEXTS)
    np.testing.assert_allclose(get_model(artifact_dir).embed(TEXTS), original, atol=1e-6)
    assert json.loads((artifact_dir / "run.json").read_text()) == {"run_name": "r1"}


def test_config_records_what_consumers_need(artifact_dir):
    config = json.loads((artifact_dir / "tunerflow.json").read_text())
    assert config["spec"] == {
        "base_model": config["spec"]["base_model"],
        "pooling": "mean",
        "normalize": True,
        "max_length": 24,
        "dimension": 32,
    }
    assert {"torch", "transformers", "tunerflow"} <= set(config["versions"])
    assert "model.safetensors" in config["files"]


def test_no_pickle_files(artifact_dir):
    suffixes = {path.suffix for path in artifact_dir.rglob("*")}
    assert not suffixes & {".bin", ".pt", ".pth", ".pkl", ".ckpt"}


def test_empty_run_metadata_without_run(tiny_model_dir, tmp_path):
    path = save_artifact(load_model(tiny_model_dir), tmp_path / "a")
    assert json.loads((path / "run.json").read_text()) == {}


def test_zip_loads_the_same(artifact_dir):
    from_zip = get_model(artifact_dir.with_suffix(".zip")).embed(TEXTS)
    np.testing.assert_allclose(from_zip, get_model(artifact_dir).embed(TEXTS), atol=1e-6)


def test_existing_directory_is_not_overwritten_silently(artifact_dir, tiny_model_dir):
    with pytest.raises(ArtifactError, match="already exists"):
        save_artifact(load_model(tiny_model_dir), artifact_dir)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [True, False])
def test_sentence_transformers_opens_the_artifact(tiny_model_dir, tmp_path, pooling, normalize):
    from sentence_transformers import SentenceTransformer

    path = save_artifact(load_model(tiny_model_dir, pooling=pooling, normalize=normalize), tmp_path / "a")
    theirs = SentenceTransformer(str(path), device="cpu").encode(TEXTS)
    ours = get_model(path).embed(TEXTS)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def _copy(artifact_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(artifact_dir, target)
    return target


def test_tampered_weights_are_named(artifact_dir, tmp_path):
    copy = _copy(artifact_dir, tmp_path)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256") as error:
        load_artifact(copy)
    assert error.value.path == str(weights)


def test_truncated_file_is_named(artifact_dir, tmp_path):
    copy = _copy(artifact_dir, tmp_path)
    tokenizer = copy / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="truncated") as error:
        load_artifact(copy)
    assert error.value.path == str(tokenizer)


def test_missing_file_is_named(artifact_dir, tmp_path):
    copy = _copy(artifact_dir, tmp_path)
    (copy / "config.json").unlink()
    with pytest.raises(ArtifactError, match="missing") as error:
        load_artifact(copy)
    assert error.value.path == str(copy / "config.json")
    assert f"{copy / 'config.json'} is missing" in str(error.value)


def test_mismatched_dimension_is_detected(artifact_dir, tmp_path):
    copy = _copy(artifact_dir, tmp_path)
    config_file = copy / "tunerflow.json"
    config = json.loads(config_file.read_text())
    config["spec"]["dimension"] = 768
    config_file.write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="dimension 768") as error:
        load_artifact(copy)
    assert error.value.path == str(config_file)


def test_weights_from_another_model_are_detected(artifact_dir, tmp_path):
    from tests.conftest import build_tiny_model

    copy = _copy(artifact_dir, tmp_path)
    other = build_tiny_model(tmp_path / "other", hidden=16)
    weights = copy / "model.safetensors"
    shutil.copyfile(other / "model.safetensors", weights)
    with pytest.raises(ArtifactError, match=re.escape(f"{weights} does not match {copy / 'config.json'}")) as error:
        load_artifact(copy, verify=False)
    assert error.value.path == str(weights)


def test_damaged_config_is_named(artifact_dir, tmp_path):
    copy = _copy(artifact_dir, tmp_path)
    (copy / "tunerflow.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="tunerflow.json"):
        load_artifact(copy)


def test_truncated_zip_is_named(artifact_dir, tmp_path):
    archive = tmp_path / "cut.zip"
    archive.write_bytes(artifact_dir.with_suffix(".zip").read_bytes()[:5000])
    with pytest.raises(ArtifactError, match="cut.zip"):
        load_artifact(archive)


def test_zip_with_unsafe_paths_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../escape.txt", "x")
    with pytest.raises(ArtifactError, match="unsafe path"):
        load_artifact(archive)
    assert not (tmp_path.parent / "escape.txt").exists()
