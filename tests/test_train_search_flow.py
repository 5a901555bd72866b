"""flows/train.yml searches: after a run publishes, the indexer re-embeds and swaps; no query fails meanwhile."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.flows import WRITE_KEY, flow_from_yaml
from tests.training_helpers import toy_options, toy_records

jina = pytest.importorskip("jina")
LIMIT = 5


def _ranking(model: str, queries: list[str], index: list[str]) -> list[tuple[list[int], np.ndarray]]:
    """(positions, scores) of the best LIMIT index texts per query with ``model``, as evaluate ranks them."""
    from tunerflow.evaluation.evaluator import top_matches
    from tunerflow.inference import open_backend

    backend = open_backend(model)

    def unit(matrix):
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    scores = unit(backend.embed(queries)) @ unit(backend.embed(index)).T
    return [(top_matches(row, LIMIT), row[top_matches(row, LIMIT)]) for row in scores]


class Searching(threading.Thread):
    """Searches without pause, alternating gRPC and HTTP, keeping every answer's scores and every error."""

    def __init__(self, hosts: list[str], queries: list[str]) -> None:
        super().__init__(daemon=True)
        self.hosts, self.queries = hosts, queries
        self.answers: list[tuple[float, str, list[list[float]]]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from tunerflow.client.search import search

        turn = 0
        while not self.stop.is_set():
            host = self.hosts[turn % len(self.hosts)]
            turn += 1
            try:
                answer = search(self.queries, limit=LIMIT, host=host)
                self.answers.append((time.monotonic(), host, [[m.score for m in q] for q in answer]))
            except Exception as error:  # the test asserts there is none
                self.errors.append(f"{host}: {error!r}")


def test_searches_follow_a_published_run_without_a_failed_query(tmp_path, tiny_model_dir, monkeypatch):
    import tunerflow
    from tunerflow.client.connection import Connection
    from tunerflow.client.search import rebuilt_with, search_status
    from tunerflow.serving.documents import LabeledText

    monkeypatch.setenv("TUNERFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TUNERFLOW_API_KEY", WRITE_KEY)  # the client's key on both protocols
    follow = {"model": str(tiny_model_dir), "poll_interval": 0.5}
    flow, grpc_port, http_port = flow_from_yaml("train.yml", tmp_path, {"encoder": follow, "indexer": follow})
    grpc, http = f"grpc://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    index = toy_records(96, 3, "i")
    queries = [r.text for r in toy_records(12, 2, "q")]
    with flow:
        tunerflow.index([(r.text, r.label) for r in index], host=grpc)
        before = tunerflow.search(queries, limit=LIMIT, host=grpc)
        searching = Searching([grpc, http], queries)
        searching.start()
        connection = Connection(grpc)
        for name, seed, prefix, count in (("train", 1, "t", 240), ("queries", 2, "q", 24), ("index", 3, "i", 96)):
            docs = [LabeledText(id=r.id, text=r.text, label=r.label) for r in toy_records(count, seed, prefix)]
            connection.upload(name, docs)
        connection.call("/runs/start", toy_options(tiny_model_dir, epochs=1, run_name="swap", publish="auto"))
        deadline = time.monotonic() + 300
        while (status := connection.call("/runs/status", {"run_name": "swap"}))["status"] not in ("FINISHED", "FAILED"):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status["status"] == "FINISHED", status["details"]
        artifact = str(tmp_path / "home" / "artifacts" / "swap")
        while not rebuilt_with(state := search_status(grpc), artifact):
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
        swapped = time.monotonic()
        while len([a for a in searching.answers if a[0] > swapped]) < 4:  # a few answers after the swap, both protocols
            assert time.monotonic() < deadline and searching.is_alive()
            time.sleep(0.1)
        searching.stop.set()
        searching.join(timeout=60)
        after = tunerflow.search(queries, limit=LIMIT, host=grpc)

    assert searching.errors == []
    assert state["model"] == artifact and state["count"] == len(index) and state["rebuild"]["state"] == "done"
    texts = [r.text for r in index]
    old, new = _ranking(str(tiny_model_dir), queries, texts), _ranking(artifact, queries, texts)
    for matches, (positions, scores) in zip(after, new, strict=True):
        assert [m.id for m in matches] == [f"item-{p}" for p in positions]
        np.testing.assert_allclose([m.score for m in matches], scores, atol=1e-5)
    for matches, (_, scores) in zip(before, old, strict=True):
        np.testing.assert_allclose([m.score for m in matches], scores, atol=1e-5)
    # Every answer during the swap came whole from one model: the old pair or the new one, never a mix.
    old_scores, new_scores = [list(s) for _, s in old], [list(s) for _, s in new]
    assert not np.allclose(old_scores, new_scores, atol=1e-3)  # training changed the model
    kinds = []
    for _, _, scores in searching.answers:
        if np.allclose(scores, old_scores, atol=1e-5):
            kinds.append("old")
        else:
            np.testing.assert_allclose(scores, new_scores, atol=1e-5)
            kinds.append("new")
    assert kinds[0] == "old" and kinds[-1] == "new" and kinds == sorted(kinds, key=["old", "new"].index)
    assert {host for _, host, _ in searching.answers} == {grpc, http}
