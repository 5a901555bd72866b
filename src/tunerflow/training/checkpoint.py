"""Checkpoints without pickle: tensors in safetensors files, everything else in JSON.

A checkpoint directory holds ``model.safetensors`` (model and trainable loss
parameters), ``optimizer.safetensors`` (and ``loss_optimizer.safetensors`` with a
``loss_optimizer``) plus the optimizers' non-tensor state and the loop state in
``state.json`` (sampler position, scheduler step, RNG states, metrics so far).
It is written to a temporary directory and renamed, so a crash leaves either
the previous checkpoint or the new one.

With several ranks, every rank takes part (its RNG states are gathered: its
dropout goes on where it stopped) and rank 0 writes. The checkpoint records the
number of ranks; it resumes with that number only.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tunerflow.errors import ArtifactError, ConfigError
from tunerflow.training.state import TrainSetup, TrainState


def _model_tensors(setup: TrainSetup) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in setup.model.state_dict().items()}
    tensors.update({f"loss.{k}": v for k, v in setup.loss_fn.state_dict().items()})
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _split_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state_dict = optimizer.state_dict()
    tensors, plain = {}, {}
    for param_id, entries in state_dict["state"].items():
        plain[str(param_id)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[str(param_id)][key] = value
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def _rng_states() -> dict[str, torch.Tensor]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return rng


def _rank_prefix(rank: int) -> str:
    return "" if rank == 0 else f"rank{rank}."  # rank 0's keys are a one-process checkpoint's


def _rank_rng(rng: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    if rank == 0:
        return {key: value for key, value in rng.items() if not key.startswith("rank")}
    prefix = _rank_prefix(rank)
    return {key[len(prefix) :]: value for key, value in rng.items() if key.startswith(prefix)}


def save_checkpoint(directory: Path, setup: TrainSetup, state: TrainState) -> None:
    """Write the checkpoint (rank 0); with several ranks, every rank must call this."""
    gathered = setup.world.gather_to_main(_rng_states())
    if not setup.world.is_main:
        return
    partial = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(_model_tensors(setup), str(partial / "model.safetensors"))
    optimizer_tensors, optimizer_plain = _split_optimizer(setup.optimizer)
    save_file(optimizer_tensors, str(partial / "optimizer.safetensors"))
    loss_optimizer_plain = None
    if setup.loss_optimizer is not None:
        loss_optimizer_tensors, loss_optimizer_plain = _split_optimizer(setup.loss_optimizer)
        save_file(loss_optimizer_tensors, str(partial / "loss_optimizer.safetensors"))
    rng = {_rank_prefix(rank) + key: value for rank, states in enumerate(gathered) for key, value in states.items()}
    save_file(rng, str(partial / "rng.safetensors"))
    extra = {
        "world_size": setup.world.size,
        "optimizer": optimizer_plain,
        "loss_optimizer": loss_optimizer_plain,
        "state": state.to_dict(),
        "python_random": _jsonable(random.getstate()),
        "scaler": setup.scaler.state_dict() if setup.scaler is not None else None,
    }
    (partial / "state.json").write_text(json.dumps(extra))
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    partial.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path, setup: TrainSetup) -> TrainState:
    """Restore ``setup`` (model, loss, optimizer, scaler, RNG) and return the saved loop state."""
    try:
        extra = json.loads((directory / "state.json").read_text())
        tensors = load_file(str(directory / "model.safetensors"))
        optimizer_tensors = load_file(str(directory / "optimizer.safetensors"))
        rng = load_file(str(directory / "rng.safetensors"))
    except (OSError, ValueError) as error:
        raise ArtifactError(f"checkpoint {directory} cannot be read: {error}", str(directory)) from error
    saved_world = extra.get("world_size", 1)
    if saved_world != setup.world.size:
        raise ConfigError(
            f"the checkpoint in {directory} was written by {saved_world} training process(es) and this run has "
            f"{setup.world.size}: resume with devices x nodes = {saved_world} (the batches are split by rank)"
        )
    rng = _rank_rng(rng, setup.world.rank)
    setup.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    setup.loss_fn.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")})
    _restore_optimizer(setup.optimizer, extra["optimizer"], optimizer_tensors)
    if setup.loss_optimizer is not None:
        if not extra.get("loss_optimizer"):
            raise ConfigError(f"the checkpoint in {directory} has no loss optimizer: resume with loss_optimizer null")
        loss_tensors = _read_tensors(directory / "loss_optimizer.safetensors", directory)
        _restore_optimizer(setup.loss_optimizer, extra["loss_optimizer"], loss_tensors)
    elif extra.get("loss_optimizer"):
        raise ConfigError(f"the checkpoint in {directory} has a loss optimizer: resume with the same loss_optimizer")
    if setup.scaler is not None and extra.get("scaler"):
        setup.scaler.load_state_dict(extra["scaler"])
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng[k] for k in sorted(rng) if k.startswith("cuda.")])
    random.setstate(_tupled(extra["python_random"]))
    return TrainState.from_dict(extra["state"])


def _read_tensors(path: Path, directory: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, ValueError) as error:
        raise ArtifactError(f"checkpoint {directory} cannot be read: {error}", str(directory)) from error


def _restore_optimizer(optimizer: torch.optim.Optimizer, plain: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Load what :func:`_split_optimizer` wrote back into ``optimizer``."""
    state = {}
    for param_id, entries in plain["state"].items():
        restored = dict(entries)
        prefix = f"{param_id}."
        restored.update({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        state[int(param_id)] = restored
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _tupled(value):
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value
