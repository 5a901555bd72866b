"""Retrieval evaluation with the reference tool's nine metrics (see METRICS in the README)."""

from tunerflow.evaluation.evaluator import EvaluationSet, evaluate
from tunerflow.evaluation.metrics import METRIC_NAMES, METRIC_PREFIX, metric_key, query_metrics

__all__ = ["METRIC_NAMES", "METRIC_PREFIX", "EvaluationSet", "evaluate", "metric_key", "query_metrics"]
