"""Each pooling mode against a brute-force oracle written row by row."""

from __future__ import annotations

import pytest
import torch

from tunerflow.errors import ConfigError
from tunerflow.modeling.pooling import pool
from tunerflow.options import Pooling, parse_enum


def _oracle(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    rows = []
    for h, m in zip(hidden, mask, strict=True):
        kept = [h[i] for i in range(len(m)) if m[i] == 1]
        if mode == "cls":
            rows.append(h[0])
        elif mode == "mean":
            rows.append(sum(kept) / len(kept))
        else:
            rows.append(torch.stack([torch.stack([v[d] for v in kept]).max() for d in range(h.shape[1])]))
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_pooling_matches_oracle(mode):
    torch.manual_seed(0)
    hidden = torch.randn(4, 7, 5)
    hidden[:, 3:] += 100.0  # large padding values would win max and skew mean if not masked
    mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]])
    got = pool(hidden, mask, Pooling(mode))
    torch.testing.assert_close(got, _oracle(hidden, mask, mode))


def test_modes_differ():
    torch.manual_seed(1)
    hidden, mask = torch.randn(2, 6, 4), torch.ones(2, 6, dtype=torch.long)
    outs = [pool(hidden, mask, mode) for mode in Pooling]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_unknown_pooling_lists_choices():
    with pytest.raises(ConfigError, match="choose one of: mean, cls, max"):
        parse_enum(Pooling, "avg", "pooling")
