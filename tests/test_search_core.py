"""The search core: exact search agrees with evaluate, filters, bad input, fp16, ANN recall, never two models."""

from __future__ import annotations

import numpy as np
import pytest

from tests.search_helpers import evaluation_set, hashed_embedder, labelled_set, metrics_of_matches
from tunerflow.errors import ConfigError, DataError
from tunerflow.evaluation.evaluator import evaluate
from tunerflow.search import SearchBackend, Searcher, SearchRecord, VectorDType


@pytest.mark.parametrize("limit", [5, 20])
def test_exact_search_gives_evaluate_metrics(tmp_path, limit):
    index, queries = labelled_set()
    embedder = hashed_embedder("m")
    searcher = Searcher(tmp_path, embedder)
    searcher.index(index[:50])
    searcher.index(index[50:])  # two requests: index order continues across them
    answers = searcher.search_texts([q.text for q in queries], limit)
    served = metrics_of_matches(index, queries, [[m.record.id for m in matches] for matches in answers])
    expected = evaluate(embedder.embed, evaluation_set(index, queries), limit=limit)
    for name, value in expected.items():
        assert served[name] == pytest.approx(value, abs=1e-6), name


def test_ties_keep_index_order(tmp_path):
    searcher = Searcher(tmp_path, hashed_embedder("m"))
    searcher.index([SearchRecord(f"x{i}", "same words here") for i in range(5)] + [SearchRecord("y", "other")])
    ids = [m.record.id for m in searcher.search_texts(["same words"], 5)[0]]
    assert ids == ["x0", "x1", "x2", "x3", "x4"]


def test_filters_and_updates(tmp_path):
    index, _ = labelled_set()
    searcher = Searcher(tmp_path, hashed_embedder("m"))
    searcher.index(index)
    matches = searcher.search_texts([index[3].text], 5, {"label": index[3].label, "tags": {"parity": 1.0}})[0]
    assert matches and all(m.record.label == index[3].label and m.record.tags["parity"] == 1 for m in matches)
    searcher.update([SearchRecord("d3", "completely new words", "new")])
    top = searcher.search_texts(["completely new words"], 1)[0][0]
    assert (top.record.id, top.record.label) == ("d3", "new")
    assert top.record.order == 3  # an update keeps the document's place in index order
    searcher.delete(["d3"])
    assert "d3" not in [m.record.id for m in searcher.search_texts(["completely new words"], 10)[0]]


def test_bad_input_is_refused_and_nothing_is_lost(tmp_path):
    searcher = Searcher(tmp_path, hashed_embedder("m"))
    with pytest.raises(DataError, match="index is empty"):
        searcher.search_texts(["anything"], 3)
    searcher.index([SearchRecord("a", "one two"), SearchRecord("b", "three four")])
    with pytest.raises(DataError, match="already indexed"):
        searcher.index([SearchRecord("c", "five"), SearchRecord("a", "again")])
    with pytest.raises(DataError, match="repeated within one request"):
        searcher.update([SearchRecord("z", "x"), SearchRecord("z", "y")])
    with pytest.raises(DataError, match="unknown ids, nothing deleted"):
        searcher.delete(["a", "nope"])
    with pytest.raises(DataError, match="unknown filter field"):
        searcher.search_texts(["one"], 1, {"colour": "red"})
    with pytest.raises(DataError, match="16-dimensional"):
        searcher.search_vectors(np.ones((1, 8)), "m", 1)
    with pytest.raises(DataError, match="not comparable"):
        searcher.search_vectors(np.ones((1, 16)), "another-model", 1)
    assert sorted(r.id for r in searcher._pair.store.index.records) == ["a", "b"]
    reopened = Searcher(tmp_path, hashed_embedder("m"))
    assert sorted(r.id for r in reopened._pair.store.index.records) == ["a", "b"]


def test_vector_queries_of_the_index_model_match_text_queries(tmp_path):
    embedder = hashed_embedder("m")
    searcher = Searcher(tmp_path, embedder)
    index, queries = labelled_set()
    searcher.index(index)
    by_text = searcher.search_texts([queries[0].text], 5)[0]
    by_vector = searcher.search_vectors(embedder.embed([queries[0].text]), "m", 5)[0]
    assert [m.record.id for m in by_vector] == [m.record.id for m in by_text]


def test_float16_storage_ranks_like_float32(tmp_path):
    index, queries = labelled_set()
    full = Searcher(tmp_path / "32", hashed_embedder("m"))
    half = Searcher(tmp_path / "16", hashed_embedder("m"), dtype=VectorDType.FLOAT16)
    full.index(index)
    half.index(index)
    assert half._pair.store.index.vectors.dtype == np.float16
    a = full.search_texts([q.text for q in queries], 1)
    b = half.search_texts([q.text for q in queries], 1)
    assert np.allclose([m[0].score for m in a], [m[0].score for m in b], atol=2e-3)


@pytest.mark.parametrize("backend", [SearchBackend.HNSW, SearchBackend.IVF])
def test_ann_backend_reports_recall_against_exact(tmp_path, backend):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    vectors = centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))
    table = {f"t{i}": v for i, v in enumerate(vectors)}
    from tunerflow.search import Embedder, ModelIdentity

    embedder = Embedder(ModelIdentity("table", 16), lambda texts: np.array([table[t] for t in texts], np.float32))
    searcher = Searcher(tmp_path, embedder, backend=backend)
    searcher.index([SearchRecord(t, t) for t in table])
    matches = searcher.search_texts(["t5"], 10)[0]
    assert matches[0].record.id == "t5"
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    recall = searcher.status()["ann"]["recall_at_10"]
    assert recall is not None and recall >= 0.9
    exact = Searcher(tmp_path / "exact", embedder)
    exact.index([SearchRecord(t, t) for t in table])
    truth = {m.record.id for m in exact.search_texts(["t5"], 10)[0]}
    assert len(truth & {m.record.id for m in matches}) >= 8


def test_a_store_refuses_another_models_identity(tmp_path):
    from tunerflow.search import ModelIdentity, VectorStore

    VectorStore(tmp_path, ModelIdentity("a", 4)).close()
    with pytest.raises(ConfigError, match="rebuild the index"):
        VectorStore(tmp_path, ModelIdentity("b", 4))


def test_the_search_core_never_imports_jina():
    import subprocess
    import sys

    code = "import tunerflow.search, tunerflow.search.ann, tunerflow.search.convert, sys; print(' '.join(sys.modules))"
    modules = set(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    )
    assert "tunerflow.search.searcher" in modules
    assert not {name for name in modules if name == "jina" or name.startswith("jina.")}
