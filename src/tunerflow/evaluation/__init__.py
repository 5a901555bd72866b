"""Retrieval evaluation with the reference tool's nine metrics (see METRICS in the README)."""

from tunerflow.evaluation.evaluator import PRIMARY_METRIC, EvaluationSet, evaluate
from tunerflow.evaluation.metrics import METRIC_NAMES, query_metrics

__all__ = ["METRIC_NAMES", "PRIMARY_METRIC", "EvaluationSet", "evaluate", "query_metrics"]
