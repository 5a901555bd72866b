"""The publication gate: whether a finished run's artifact is served, by its ``publish`` policy.

A pure function of the policy and the run's metrics. ``if_better`` serves an
artifact only when its after-metric on the run's evaluation set is not below
the before-metric on the primary metric (``best_metric``). A run without an
evaluation set has nothing to compare, so under ``if_better`` it is not served
automatically: promote it with ``/runs/promote``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunerflow.options import PublishPolicy, parse_enum

PROMOTE_HINT = "promote it with /runs/promote"


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
        if not key or key not in before or key not in after:
            return Decision(False, f"not promoted: no evaluation set to compare with; {PROMOTE_HINT}")
        if after[key] >= before[key]:
            return Decision(True, f"{key} {after[key]:.4f} after is not below {before[key]:.4f} before")
        return Decision(
            False,
            f"not promoted: {key} {after[key]:.4f} after is below {before[key]:.4f} before, "
            f"so the served model stays; {PROMOTE_HINT}",
        )
    raise AssertionError(f"unhandled publish policy {policy}")  # every member is handled above
