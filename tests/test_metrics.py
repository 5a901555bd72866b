"""METRICS.md's worked examples, and the retrieval step's rules (limit, exclude_self, ties)."""

from __future__ import annotations

import numpy as np
import pytest

from tunerflow.errors import DataError
from tunerflow.evaluation import EvaluationSet, evaluate, query_metrics
from tunerflow.evaluation.evaluator import top_matches

NAMES = ["precision_at_k", "recall_at_k", "f1_score_at_k", "hit_at_k", "average_precision",
         "reciprocal_rank", "r_precision", "dcg_at_k", "ndcg_at_k"]  # fmt: skip

WORKED_EXAMPLES = [
    ([0, 1, 0, 1, 0], 3, [0.4, 0.66667, 0.5, 1, 0.5, 0.5, 0.5, 1.5, 0.75]),
    ([0, 0, 1] + [0] * 17, 1, [0.05, 1.0, 0.09524, 1, 0.33333, 0.33333, 0.0, 0.63093, 0.63093]),
    ([0] * 20, 2, [0, 0, 0, 0, 0, 0, 0, 0, 0]),
]


@pytest.mark.parametrize(("relevance", "max_rel", "expected"), WORKED_EXAMPLES)
def test_worked_examples(relevance, max_rel, expected):
    got = query_metrics(relevance, max_rel)
    assert list(got) == NAMES
    assert [round(got[name], 5) for name in NAMES] == pytest.approx(expected, abs=1e-5)


def test_more_relevant_than_exist_is_an_error():
    with pytest.raises(DataError, match="max_rel"):
        query_metrics([1, 1, 1], 2)


def test_empty_list():
    assert set(query_metrics([], 0).values()) == {0.0}


def test_ties_keep_index_order_and_skip():
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.9])
    assert top_matches(scores, 2) == [1, 2]
    assert top_matches(scores, 3, skip=2) == [1, 4, 0]
    assert top_matches(scores, 10) == [1, 2, 4, 0, 3]


def _embedder(vectors: dict[str, list[float]]):
    return lambda texts: np.array([vectors[t] for t in texts], dtype=np.float32)


def test_evaluate_queries_as_own_index_excludes_self_by_id():
    # Two documents with the same text but different ids: the twin is not "self" and counts.
    vectors = {"a": [1, 0], "a2": [0.9, 0.1], "b": [0, 1], "c": [0.7, 0.7]}
    data = EvaluationSet(
        query_ids=["1", "2", "3", "4", "5"],
        query_texts=["a", "a", "a2", "b", "c"],
        query_labels=["x", "x", "x", "y", "y"],
    )
    metrics = evaluate(_embedder(vectors), data, limit=2)
    # Query 1 ("a"): candidates without itself: 2 ("a", x), 3 ("a2", x) -> r=[1,1], max_rel=2.
    # Query 4 ("b"): 5 ("c", y), then 3 ("a2") -> r=[1,0], max_rel=1.
    # Query 5 ("c"): 3 ("a2" cos .78) vs 1/2 ("a" cos .707) vs 4 ("b" .707): 3 first, then 1 -> r=[0,0].
    per_query_recall = [1.0, 1.0, 1.0, 1.0, 0.0]
    assert metrics["model_recall_at_k"] == pytest.approx(np.mean(per_query_recall))
    assert metrics["model_hit_at_k"] == pytest.approx(4 / 5)
    assert set(metrics) == {f"model_{name}" for name in NAMES}


def test_evaluate_with_separate_index_and_limit():
    vectors = {"q": [1, 0], "i1": [0.8, 0.2], "i2": [1, 0.01], "i3": [0, 1]}
    data = EvaluationSet(["q"], ["q"], ["x"], ["i1", "i2", "i3"], ["i1", "i2", "i3"], ["x", "z", "x"])
    metrics = evaluate(_embedder(vectors), data, limit=1)
    # Nearest is i2 (label z): nothing relevant in the top 1; max_rel is 2.
    assert metrics["model_hit_at_k"] == 0.0
    metrics = evaluate(_embedder(vectors), data, limit=2)
    assert metrics["model_precision_at_k"] == pytest.approx(0.5)
    assert metrics["model_recall_at_k"] == pytest.approx(0.5)
    assert metrics["model_reciprocal_rank"] == pytest.approx(0.5)
    assert metrics["model_dcg_at_k"] == pytest.approx(1.0)


def test_metric_key_names_what_evaluate_reports():
    from tunerflow.cli.tables import metrics_table
    from tunerflow.evaluation import metric_key

    assert metric_key("average_precision") == metric_key("model_average_precision") == "model_average_precision"
    assert metric_key("model_hit_at_k", prefix="base") == "base_model_hit_at_k"  # only its own prefix is dropped
    data = EvaluationSet(["q"], ["q"], ["x"], ["i1", "i2"], ["i1", "i2"], ["x", "z"])
    vectors = {"q": [1, 0], "i1": [0.8, 0.2], "i2": [0, 1]}
    metrics = evaluate(_embedder(vectors), data, limit=1, prefix="base")
    assert set(metrics) == {metric_key(name, "base") for name in NAMES}
    reported = evaluate(_embedder(vectors), data, limit=1)
    table = metrics_table({"before": reported, "after": reported, "after_epoch": 1, "primary_metric": "x"})
    assert all(metric_key(name) in table for name in NAMES)
