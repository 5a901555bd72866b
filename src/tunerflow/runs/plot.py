"""The run's picture: loss per step and the metrics before, and after each epoch."""

from __future__ import annotations

from pathlib import Path

from tunerflow.evaluation.metrics import metric_key
from tunerflow.training.state import TrainState

_SHOWN = ("average_precision", "reciprocal_rank", "ndcg_at_k", "recall_at_k")


def plot_run(state: TrainState, primary: str, path: Path) -> Path:
    """Write a PNG with the loss curve and the metrics per epoch (epoch 0 = before fine-tuning)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(range(1, len(state.step_losses) + 1), state.step_losses, linewidth=0.8)
    loss_axis.set(title="training loss", xlabel="step", ylabel="loss")
    evaluations = [e for e in state.evaluations if e["stage"] != "averaged"]  # one point per epoch
    epochs = [e["epoch"] for e in evaluations]
    val_losses = [e["metrics"].get("val_loss") for e in evaluations]
    if epochs and None not in val_losses:  # validation data (eval_data, val_split): on the loss's axis
        loss_axis.plot(
            [e * len(state.step_losses) / max(epochs[-1], 1) for e in epochs],
            val_losses,
            "o-",
            label="val_loss (at epoch ends)",
        )
        loss_axis.legend(fontsize=8)
    plotted = False
    for key in dict.fromkeys(metric_key(name) for name in (primary, *_SHOWN)):
        values = [e["metrics"].get(key) for e in evaluations]
        if epochs and None not in values:
            metric_axis.plot(epochs, values, marker="o", label=key)
            plotted = True
    if plotted:
        metric_axis.legend(fontsize=8)
    metric_axis.set(title="retrieval metrics (epoch 0: before)", xlabel="epoch")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
