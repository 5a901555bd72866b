"""The indexer executor called directly: its config loads, and a published artifact swaps model and index."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.conftest import build_tiny_model

jina = pytest.importorskip("jina")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "executors" / "indexer") not in sys.path:
    sys.path.insert(0, str(ROOT / "executors" / "indexer"))


def _docs(pairs):
    from docarray import DocList

    from tunerflow.search.documents import SearchDoc

    return DocList[SearchDoc]([SearchDoc(id=i, text=t) for i, t in pairs])


def test_config_loads_and_a_published_artifact_is_re_embedded(tmp_path, tiny_model_dir):
    from jina import Executor

    from tunerflow.artifact.publish import write_latest
    from tunerflow.search.parameters import SearchParameters, WriteParameters

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    executor = Executor.load_config(
        str(ROOT / "executors" / "indexer" / "config.yml"),
        uses_with={
            "model": str(tiny_model_dir),
            "follow": str(artifacts),
            "home": str(tmp_path / "s"),
            "poll_interval": 0.2,
        },
    )
    try:
        texts = [("a", "how do cats learn"), ("b", "the best way to cook food"), ("c", "why is the sky blue")]
        assert executor.index(_docs(texts), WriteParameters())["indexed"] == 3
        before = executor.search(_docs([("q", "cats learn")]), SearchParameters(limit=3))[0].scores
        build_tiny_model(artifacts / "run-1", seed=7)
        write_latest(artifacts, "run-1")
        deadline = time.monotonic() + 120
        while executor.searcher.status()["model"] != str(artifacts / "run-1"):
            executor.search(_docs([("q", "cats learn")]), SearchParameters(limit=3))  # answered throughout
            assert time.monotonic() < deadline, executor.searcher.status()
            time.sleep(0.1)
        after = executor.search(_docs([("q", "cats learn")]), SearchParameters(limit=3))[0]
        assert after.scores != before and len(after.matches) == 3
        status = executor.searcher.status()
        assert status["count"] == 3 and status["rebuild"]["state"] == "done"
    finally:
        executor.close()
