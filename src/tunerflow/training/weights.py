"""Weight averaging after training: WiSE-FT (Wortsman et al., robust fine-tuning of zero-shot models).

The tuned weights are mixed with the starting weights, ``alpha * tuned + (1 - alpha) * start``:
alpha 1 keeps the tuned model, 0 gives the starting model back.
"""

from __future__ import annotations

import torch


def weights_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s weights on the CPU (the starting point of WiSE-FT)."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


def interpolate_weights(model: torch.nn.Module, start: dict[str, torch.Tensor], alpha: float) -> None:
    """Set ``model``'s floating-point weights to ``alpha * current + (1 - alpha) * start``, in place.

    Integer buffers (position ids) are kept as they are; they are the same in both.
    """
    current = model.state_dict()
    mixed = {}
    for key, value in current.items():
        if value.is_floating_point():
            mixed[key] = alpha * value + (1.0 - alpha) * start[key].to(value.device, value.dtype)
        else:
            mixed[key] = value
    model.load_state_dict(mixed)
