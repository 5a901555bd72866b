"""Plain-text tables for the terminal."""

from __future__ import annotations

from tunerflow.evaluation.metrics import METRIC_NAMES, metric_key


def metrics_table(metrics: dict) -> str:
    """The metrics before and after fine-tuning, side by side: the nine retrieval metrics, and val_loss
    where the run has a validation slice (a run without an evaluation set has only val_loss)."""
    before, after = metrics["before"] or {}, metrics["after"] or {}
    epoch = metrics.get("after_epoch")
    lines = [f"{'metric':<26}{'before':>10}{'after':>10}{'change':>10}", "-" * 56]
    keys = [metric_key(name) for name in METRIC_NAMES] + ["val_loss"]
    for key in (k for k in keys if k in before and k in after):
        lines.append(f"{key:<26}{before[key]:>10.5f}{after[key]:>10.5f}{after[key] - before[key]:>+10.5f}")
    if epoch is not None:
        lines.append(f"(after = epoch {epoch}, chosen by {metrics.get('primary_metric')})")
    return "\n".join(lines)


def models_table(models: list[dict]) -> str:
    """The catalogue: name, architecture, embedding dimension, parameters and size on disk, where it comes from."""
    lines = [f"{'name':<48}{'architecture':<28}{'dim':>6}{'params':>10}{'size':>10}  source", "-" * 110]
    for entry in models:
        lines.append(
            f"{entry['name']:<48}{entry.get('architecture') or '?':<28}{entry.get('dimension') or '?':>6}"
            f"{_count(entry.get('parameters')):>10}{_bytes(entry.get('size')):>10}  {entry.get('source', '')}"
        )
    return "\n".join(lines)


def _count(value: int | None) -> str:
    if not value:
        return "?"
    return f"{value / 1e9:.1f}B" if value >= 1e9 else f"{value / 1e6:.1f}M" if value >= 1e5 else str(value)


def _bytes(value: int | None) -> str:
    if not value:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return "?"
