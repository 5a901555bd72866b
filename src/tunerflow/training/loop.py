"""The training loop. It reads top to bottom; the best-epoch selection and the callbacks do the rest."""

from __future__ import annotations

import torch

from tunerflow.training.callbacks import Callback, fire
from tunerflow.training.components import LR_SCALE
from tunerflow.training.selection import Selection
from tunerflow.training.state import TrainSetup, TrainState, scheduled_learning_rate
from tunerflow.training.step_forward import StepForward


def train(
    setup: TrainSetup, state: TrainState, callbacks: list[Callback], selection: Selection | None = None
) -> TrainState:
    """Run (or resume) training from ``state`` until the recipe's epochs are done or something stops it.

    A resumed ``state`` goes on at its epoch and batch. ``selection`` (evaluation,
    best epoch, early stopping) decides after each epoch, before any callback hears of it.
    With several ranks (``setup.world``) each embeds its share of every global batch, the
    loss sees the gathered batch, and only rank 0 evaluates (see :mod:`.distributed`).
    """
    recipe, model, optimizers, world = setup.recipe, setup.model, setup.optimizers, setup.world
    trained = [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
    forward = setup.forward or StepForward(model)  # the share's chunks in, its embeddings out
    loss_parameters = list(setup.loss_fn.parameters())
    autocast_dtype = setup.autocast_dtype
    if not world.is_main:
        selection = None  # rank 0 evaluates and decides; the others hear its decisions
    fire(callbacks, "on_train_begin", setup, state)
    if selection is not None:
        selection.before(state)
    while state.epoch < recipe.epochs and state.stop_reason is None:
        batches = setup.batches(state.epoch)
        fire(callbacks, "on_epoch_begin", setup, state)
        model.train()
        losses = []  # kept on the device: calling .item() every step would sync with the GPU
        for inputs in setup.step_inputs(batches, state.batch_in_epoch):  # this rank's share, tokenised once
            rate = scheduled_learning_rate(recipe, state)
            for group in (group for optimizer in optimizers for group in optimizer.param_groups):
                group["lr"] = rate * group.get(LR_SCALE, 1.0)  # a loss optimizer's lr is scaled to its own
            with torch.autocast(setup.device.type, dtype=autocast_dtype or torch.float32, enabled=bool(autocast_dtype)):
                local = forward(inputs.chunks, inputs.share)  # length chunks (little padding), in fp32 for the loss
            embeddings = world.gather(local, inputs.size)  # the global batch, with gradients (one rank: as is)
            labels = inputs.labels
            mined = setup.miner(embeddings, labels) if setup.miner is not None else None
            loss = setup.loss_fn(embeddings, labels, mined)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            if setup.scaler is not None:  # fp16 only
                setup.scaler.scale(loss).backward()
                for optimizer in optimizers:
                    setup.scaler.unscale_(optimizer)
            else:
                loss.backward()
            world.average_gradients(loss_parameters)  # DDP averaged the model's during the backward pass
            if recipe.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(trained, recipe.max_grad_norm)  # one norm over model and loss
            for optimizer in optimizers:
                if setup.scaler is not None:
                    setup.scaler.step(optimizer)
                else:
                    optimizer.step()
            if setup.scaler is not None:
                setup.scaler.update()
            state.step += 1
            state.batch_in_epoch = inputs.index + 1
            state.texts_trained += inputs.size
            losses.append(loss.detach())
            fire(callbacks, "on_step_end", setup, state, loss.detach())
            if state.stop_reason is not None:
                break
        if losses:
            values = torch.stack(losses).float().cpu().tolist()  # one sync per epoch
            state.step_losses.extend(values)
        if state.stop_reason is not None:
            break  # stopped mid-epoch (cancelled, shut down): the epoch is not done; batch_in_epoch says where
        finished = state.step_losses[-state.steps_per_epoch[state.epoch] :] if state.step_losses else [0.0]
        state.epoch_losses.append(sum(finished) / max(len(finished), 1))
        state.epoch += 1
        state.batch_in_epoch = 0
        if selection is not None:
            selection.after_epoch(setup, state)
        state.stop_reason = world.from_main(state.stop_reason)  # an early stop, decided by rank 0
        fire(callbacks, "on_epoch_end", setup, state)
    fire(callbacks, "on_train_end", setup, state)
    return state
