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


def _lookup(kind: str, name: str, table: dict[str, type]) -> type:
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(table))}")
    return table[name]


def _accepted_options(cls: type) -> dict[str, inspect.Parameter]:
    """Constructor options of ``cls``, following ``**kwargs`` up the class hierarchy."""
    accepted: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        for name, parameter in parameters.items():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) and name != "self":
                accepted.setdefault(name, parameter)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return accepted


def _check_options(kind: str, cls: type, options: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Refuse option names the constructor does not take, and values unlike a bool or number default."""
    accepted = {name: p for name, p in _accepted_options(cls).items() if name not in skip}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {kind} {cls.__name__}; "
            f"valid: {', '.join(sorted(accepted)) or 'none'}"
        )
    for name, value in options.items():
        default = accepted[name].default
        if value is None:
            continue
        # Only bool and number defaults say the kind: a string default ("all") may also take a number.
        if isinstance(default, bool) and not isinstance(value, bool):
            wanted = "true or false"
        elif _is_number(default) and not _is_number(value):
            wanted = "a number"
        else:
            continue
        raise ConfigError(
            f"option {name} of {kind} {cls.__name__} must be {wanted} (default {default!r}), got {value!r}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


LR_SCALE = "lr_scale"  # a param group's learning rate is the schedule's times this (1 when absent)


def build_loss_optimizer(
    name: str | None, options: dict[str, Any], loss_fn: nn.Module, learning_rate: float
) -> torch.optim.Optimizer | None:
    """The optimizer of the loss's own parameters (``loss_optimizer``), or None: they train with the model's.

    ``options`` may give ``lr`` (default ``learning_rate``); it follows the run's schedule,
    scaled: at every step its rate is the model's times ``lr / learning_rate``.
    """
    options = dict(options)
    if name in (None, "", "none", "None"):
        if options:
            raise ConfigError("loss_optimizer_options needs loss_optimizer (the loss's own optimizer)")
        return None
    parameters = [p for p in loss_fn.parameters() if p.requires_grad]
    if not parameters:
        raise ConfigError(
            f"loss_optimizer: {type(loss_fn).__name__} has no trainable parameters to optimise; use it with a loss "
            "that has them (ArcFaceLoss, CosFaceLoss, ProxyAnchorLoss, SoftTripleLoss, NormalizedSoftmaxLoss, ...) "
            "or set loss_optimizer: null"
        )
    rate = options.pop("lr", learning_rate)
    if isinstance(rate, bool) or not _is_number(rate) or not 0 <= rate <= 1:
        raise ConfigError(f"loss_optimizer_options lr must be a number from 0 to 1, got {rate!r}")
    try:
        optimizer = build_optimizer(name, options, parameters, float(rate))
    except ConfigError as error:
        raise ConfigError(f"loss_optimizer: {error}") from None
    for group in optimizer.param_groups:
        group[LR_SCALE] = float(rate) / learning_rate
    return optimizer


def check_components(
    loss: str, loss_options: dict[str, Any], miner: str | None, miner_options: dict[str, Any],
    optimizer: str, optimizer_options: dict[str, Any],
    loss_optimizer: str | None = None, loss_optimizer_options: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Refuse unknown names, option names and option kinds of a recipe's components, without a model.

    Each is built once on stand-ins (2 classes, 8 dimensions, one parameter): cheap,
    and what the constructors themselves refuse is refused here too.
    """
    stand_in = [torch.nn.Parameter(torch.zeros(1))]
    loss_fn = build_loss(loss, loss_options, num_classes=2, embedding_size=8)
    build_miner(miner, miner_options)
    build_optimizer(optimizer, optimizer_options, stand_in, learning_rate=1e-3)
    build_loss_optimizer(loss_optimizer, loss_optimizer_options or {}, loss_fn, learning_rate=1e-3)
