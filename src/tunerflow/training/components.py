"""Losses and miners of pytorch-metric-learning, and torch optimizers, built by name.

Nothing is re-implemented: names resolve to the library's classes, options are
passed through after checking them against the constructor's signature, and
option values naming a distance, reducer or regularizer (``"CosineSimilarity"``
or ``{"name": "CosineSimilarity", ...options}``) become those objects, composed
as the library intends.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from tunerflow.errors import ConfigError

# Option names whose values are pytorch-metric-learning objects, and the module they come from.
_OBJECT_OPTIONS = {
    "distance": "distances",
    "reducer": "reducers",
    "embedding_regularizer": "regularizers",
    "weight_regularizer": "regularizers",
}
# Options filled from the data and the model when a loss asks for them and they are not given.
_AUTO_OPTIONS = ("num_classes", "embedding_size")


def _module(name: str):
    import importlib

    return importlib.import_module(f"pytorch_metric_learning.{name}")


def _classes(module, base: type) -> dict[str, type]:
    return {
        name: cls
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, base) and not name.startswith("Base") and cls is not base
    }


def loss_names() -> list[str]:
    from pytorch_metric_learning.losses import BaseMetricLossFunction

    return sorted(_classes(_module("losses"), BaseMetricLossFunction))


def miner_names() -> list[str]:
    from pytorch_metric_learning.miners import BaseMiner

    return sorted(_classes(_module("miners"), BaseMiner))


def optimizer_names() -> list[str]:
    return sorted(_classes(torch.optim, torch.optim.Optimizer))


def _lookup(kind: str, name: str, table: dict[str, type]) -> type:
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(table))}")
    return table[name]


def _accepted_options(cls: type) -> set[str]:
    """Constructor options of ``cls``, following ``**kwargs`` up the class hierarchy."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        names |= {n for n, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return names - {"self"}


def _check_options(kind: str, cls: type, options: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    valid = sorted(_accepted_options(cls) - set(skip))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {kind} {cls.__name__}; valid: {', '.join(valid) or 'none'}"
        )


def _resolve_objects(options: dict[str, Any]) -> dict[str, Any]:
    resolved = dict(options)
    for key, module_name in _OBJECT_OPTIONS.items():
        value = resolved.get(key)
        if value is None or not isinstance(value, (str, dict)):
            continue
        spec = {"name": value} if isinstance(value, str) else dict(value)
        name = spec.pop("name", None)
        module = _module(module_name)
        table = {n: c for n, c in vars(module).items() if inspect.isclass(c) and not n.startswith("Base")}
        cls = _lookup(key.replace("_", " "), str(name), table)
        _check_options(key.replace("_", " "), cls, spec)
        resolved[key] = cls(**spec)
    return resolved


def build_loss(name: str, options: dict[str, Any], num_classes: int, embedding_size: int) -> nn.Module:
    """A pytorch-metric-learning loss by class name, e.g. ``TripletMarginLoss``."""
    from pytorch_metric_learning.losses import BaseMetricLossFunction

    cls = _lookup("loss", name, _classes(_module("losses"), BaseMetricLossFunction))
    _check_options("loss", cls, options)
    resolved = _resolve_objects(options)
    wanted = inspect.signature(cls.__init__).parameters
    automatic = {"num_classes": num_classes, "embedding_size": embedding_size}
    for key in _AUTO_OPTIONS:
        if key in wanted and key not in resolved:
            resolved[key] = automatic[key]
    try:
        return cls(**resolved)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"cannot build loss {name} with {options}: {error}") from None


def build_miner(name: str | None, options: dict[str, Any]) -> nn.Module | None:
    """A pytorch-metric-learning miner by class name, or None."""
    if name in (None, "", "none", "None"):
        return None
    from pytorch_metric_learning.miners import BaseMiner

    cls = _lookup("miner", name, _classes(_module("miners"), BaseMiner))
    _check_options("miner", cls, options)
    try:
        return cls(**_resolve_objects(options))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"cannot build miner {name} with {options}: {error}") from None


def build_optimizer(name: str, options: dict[str, Any], parameters, learning_rate: float) -> torch.optim.Optimizer:
    """A torch optimizer by class name, e.g. ``AdamW``; ``lr`` comes from ``learning_rate``."""
    cls = _lookup("optimizer", name, _classes(torch.optim, torch.optim.Optimizer))
    if "lr" in options:
        raise ConfigError("set the learning rate with learning_rate, not optimizer_options.lr")
    _check_options("optimizer", cls, options, skip=("params", "lr"))
    try:
        return cls(parameters, lr=learning_rate, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"cannot build optimizer {name} with {options}: {error}") from None
