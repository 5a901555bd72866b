"""The publication gate: whether a finished run's artifact is served, by its ``publish`` policy.

A pure function of the policy and the run's metrics. ``if_better`` serves an
artifact only when its after-metric on the run's evaluation set is not below
the before-metric on the primary metric (``best_metric``); without retrieval
evaluation but with ``val_loss`` (eval_data or a val_split, which data-aware
defaults hold out for small data), when its val_loss is not above the starting
model's. A run with neither has nothing to compare, so under ``if_better`` it is
not served automatically: promote it with ``/runs/promote``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunerflow.options import PublishPolicy, parse_enum

PROMOTE_HINT = "promote it with /runs/promote"
VAL_LOSS = "val_loss"


@dataclass(frozen=True)
class Decision:
    """Serve the artifact (``promote``) or not, and why, in words for the status and the log."""

    promote: bool
    reason: str


def decide(policy: PublishPolicy | str, metrics: dict) -> Decision:
    """Apply ``policy`` to a run's ``metrics`` (``primary_metric``, ``before``, ``after`` as the run records them)."""
    policy = parse_enum(PublishPolicy, policy, "publish policy")
    if policy is PublishPolicy.AUTO:
        return Decision(True, "publish is auto")
    if policy is PublishPolicy.MANUAL:
        return Decision(False, f"not promoted: publish is manual; {PROMOTE_HINT}")
    if policy is PublishPolicy.IF_BETTER:
        key = metrics.get("primary_metric")
        before, after = (metrics.get(stage) or {} for stage in ("before", "after"))
        if key and key in before and key in after:
            return _compare(key, before[key], after[key], _kept(metrics), lower_is_better=False)
        if VAL_LOSS in before and VAL_LOSS in after:
            return _compare(VAL_LOSS, before[VAL_LOSS], after[VAL_LOSS], _kept(metrics), lower_is_better=True)
        return Decision(False, f"not promoted: no evaluation set to compare with; {PROMOTE_HINT}")
    raise AssertionError(f"unhandled publish policy {policy}")  # every member is handled above


def _kept(metrics: dict) -> str:
    """Whose figures ``after`` holds: the kept epoch's, or the WiSE-FT average's."""
    if metrics.get("averaged"):
        return "the WiSE-FT average's"
    epoch = metrics.get("after_epoch")
    return f"epoch {epoch}'s" if epoch else "the kept"


def _compare(key: str, before: float, after: float, kept: str, *, lower_is_better: bool) -> Decision:
    """Serve unless ``after`` (the kept model's value) is worse than ``before`` (the starting model's)."""
    if (after <= before) if lower_is_better else (after >= before):
        way = "above" if lower_is_better else "below"
        return Decision(True, f"{key} {after:.4f} after is not {way} {before:.4f} before")
    way = "above" if lower_is_better else "below"
    return Decision(
        False,
        f"not promoted: {kept} {key} {after:.4f} is {way} {before:.4f} before fine-tuning (the starting model), "
        f"so nothing new is published and the served model stays; {PROMOTE_HINT}",
    )
