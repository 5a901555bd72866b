"""Offline-first model loading, overrides, and the bundled model against sentence-transformers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.conftest import TEXTS
from tunerflow.artifact import load_model
from tunerflow.errors import ConfigError, ModelNotAvailableError
from tunerflow.options import Pooling


def test_missing_hub_model_fails_fast_with_instructions():
    started = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as error:
        load_model("some-org/not-a-cached-model")
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "hf download some-org/not-a-cached-model" in message and "directory path" in message


def test_missing_path_is_reported():
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_model("./no/such/dir")


def test_bin_only_directory_is_refused(tmp_path, tiny_model_dir):
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelNotAvailableError, match="never unpickles"):
        load_model(tmp_path)


def test_hf_directory_defaults(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    assert loaded.spec.pooling is Pooling.MEAN
    assert loaded.spec.normalize is False
    assert loaded.spec.max_length == 64
    assert loaded.spec.dimension == 32


def test_overrides_apply(tiny_model_dir):
    loaded = load_model(tiny_model_dir, pooling="cls", normalize=True, max_length=16)
    assert (loaded.spec.pooling, loaded.spec.normalize, loaded.spec.max_length) == (Pooling.CLS, True, 16)
    assert loaded.model.pooling is Pooling.CLS


def test_max_length_beyond_positions_is_refused(tiny_model_dir):
    with pytest.raises(ConfigError, match="max_length"):
        load_model(tiny_model_dir, max_length=1000)


def test_bundled_model_equals_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    import tunerflow
    from tunerflow.modeling.sources import bundled_model_path

    ours = tunerflow.encode(tunerflow.get_model("all-MiniLM-L6-v2"), TEXTS)
    theirs = SentenceTransformer(str(bundled_model_path()), device="cpu").encode(TEXTS)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert ours.shape == (len(TEXTS), 384)
    assert cosine.min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
