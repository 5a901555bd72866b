"""Plain-text tables for the terminal."""

from __future__ import annotations

from tunerflow.evaluation.metrics import METRIC_NAMES, metric_key


def metrics_table(metrics: dict) -> str:
    """The nine metrics before and after fine-tuning, side by side."""
    before, after = metrics["before"], metrics["after"]
    epoch = metrics.get("after_epoch")
    lines = [f"{'metric':<26}{'before':>10}{'after':>10}{'change':>10}", "-" * 56]
    for name in METRIC_NAMES:
        key = metric_key(name)
        lines.append(f"{key:<26}{before[key]:>10.5f}{after[key]:>10.5f}{after[key] - before[key]:>+10.5f}")
    if epoch is not None:
        lines.append(f"(after = epoch {epoch}, chosen by {metrics.get('primary_metric')})")
    return "\n".join(lines)
