"""The nine retrieval metrics of one query, as pure functions of a 0/1 relevance list.

The definitions follow the reference tool exactly, quirks included: precision
divides by the retrieved list's length, average precision by the number of
relevant matches retrieved, DCG weighs ranks 1 and 2 both by 1, and nDCG's
ideal comes from the retrieved list only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunerflow.errors import DataError

METRIC_NAMES = (
    "precision_at_k",
    "recall_at_k",
    "f1_score_at_k",
    "hit_at_k",
    "average_precision",
    "reciprocal_rank",
    "r_precision",
    "dcg_at_k",
    "ndcg_at_k",
)
METRIC_PREFIX = "model"  # the evaluated model's prefix in the reported names: model_average_precision


def metric_key(name: str, prefix: str = METRIC_PREFIX) -> str:
    """A metric's reported name: ``average_precision`` or ``model_average_precision`` -> ``model_average_precision``."""
    return f"{prefix}_{name.removeprefix(f'{prefix}_')}"


def dcg(relevance: Sequence[int]) -> float:
    """``r[0] + sum_{i>=1} r[i] / log2(i + 1)`` with 0-based ``i``."""
    if not relevance:
        return 0.0
    return float(relevance[0]) + sum(r / math.log2(i + 1) for i, r in enumerate(relevance) if i >= 1 and r)


def query_metrics(relevance: Sequence[int], max_rel: int) -> dict[str, float]:
    """All nine metrics for one query.

    Args:
        relevance: 1 where the retrieved match shares the query's label, in rank order.
        max_rel: how many relevant documents the index holds for this query.
    """
    n = len(relevance)
    found = int(sum(relevance))
    if found > max_rel:
        raise DataError(f"{found} relevant matches retrieved but only {max_rel} exist: max_rel is wrong")
    precision = found / n if n else 0.0
    recall = found / max_rel if max_rel else 0.0
    ranks = [i + 1 for i, r in enumerate(relevance) if r]
    ideal = dcg(sorted(relevance, reverse=True))
    return {
        "precision_at_k": precision,
        "recall_at_k": recall,
        "f1_score_at_k": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "hit_at_k": 1.0 if found else 0.0,
        "average_precision": sum(k / rank for k, rank in enumerate(ranks, start=1)) / found if found else 0.0,
        "reciprocal_rank": 1.0 / ranks[0] if ranks else 0.0,
        "r_precision": sum(relevance[:found]) / found if found else 0.0,
        "dcg_at_k": dcg(relevance),
        "ndcg_at_k": dcg(relevance) / ideal if ideal else 0.0,
    }
