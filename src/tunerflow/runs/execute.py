"""Execute one run: build everything from the recipe, train, evaluate, save the artifact, decide its publication.

Serving it (``LATEST``) is the manager's, under its lock, from the decision made here
(:func:`tunerflow.runs.gate.decide`). A cancel or a shutdown takes effect within
a step, a slice of evaluation texts or an epoch's batch planning.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tunerflow.artifact import LoadedModel, load_model
from tunerflow.data.sampler import HardBatches, LabelBalancedBatches, RandomBatches, held_out_labels
from tunerflow.data.store import DatasetStore
from tunerflow.errors import ArtifactError, ConfigError
from tunerflow.evaluation import EvaluationSet, evaluate
from tunerflow.export import save_artifact
from tunerflow.inference.cpu import cpu_features
from tunerflow.inference.cpu_linear import choose_linear_kernel
from tunerflow.inference.torch_backend import TorchBackend, resolve_device
from tunerflow.modeling.loading import with_head
from tunerflow.modeling.sources import ModelSource
from tunerflow.options import DType, LinearKernel, Precision, Sampler
from tunerflow.runs.gate import Decision, decide
from tunerflow.runs.hard_batches import hard_batch_neighbours, starting_model_embedder
from tunerflow.runs.plot import plot_run
from tunerflow.runs.precision import precision_checker, quality_probe
from tunerflow.runs.probe import load_result, run_probe, save_result
from tunerflow.runs.record import RunStatus
from tunerflow.training.callbacks import Cancel, Checkpoint, Progress
from tunerflow.training.checkpoint import load_checkpoint
from tunerflow.training.components import build_loss, build_loss_optimizer, build_miner, build_optimizer
from tunerflow.training.cpu_dropout import choose_dropout_kernel
from tunerflow.training.data_defaults import Choice
from tunerflow.training.distributed import current_world, launched, wrap_model
from tunerflow.training.hardware import choose_precision, torch_uses_amx
from tunerflow.training.loop import train
from tunerflow.training.recipe import Recipe
from tunerflow.training.selection import Selection
from tunerflow.training.state import StopReason, TrainSetup, TrainState
from tunerflow.training.step_forward import StepForward, step_forward_of
from tunerflow.training.validation import ValidationLoss, validation_batches
from tunerflow.training.weights import interpolate_weights, weights_copy

log = logging.getLogger(__name__)

STOP_CHECK_TEXTS = 512  # evaluation embeds this many texts between two looks at the cancel flag


class Interrupted(Exception):
    """Raised out of evaluation or batch planning when the run is cancelled or shut down."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass
class RunContext:
    """What a run needs from its manager."""

    name: str
    recipe: Recipe
    directory: Path
    datasets: DatasetStore
    artifacts: Path
    log: logging.Logger
    stop_reason: Callable[[], StopReason | None]
    model: ModelSource | None = None  # the recipe's model as the server's catalogue resolved it
    progress: Progress | None = None  # or anything with ``latest`` (a launched run's RemoteProgress)
    progress_sink: Callable[[dict], None] | None = None  # hears every progress update (a launched worker's)
    # Checked inside work that only this process does (evaluation slices); never a collective call.
    # None: ``stop_reason`` itself. Several processes: evaluation is not interrupted (rank 0 alone evaluates
    # while the others wait, so a stop heard by rank 0 alone would leave them waiting).
    local_stop_reason: Callable[[], StopReason | None] | None = None
    data_aware: list[dict] | None = None  # the options chosen from the training data (the run record's)
    on_probe: Callable[[dict, Recipe], None] | None = None  # hears the probe's result and the recipe it leaves


@dataclass
class RunOutcome:
    """How an execution ended: FINISHED (with an artifact), CANCELLED, or still STARTED (shut down, resumes later)."""

    status: RunStatus
    metrics: dict
    artifact: Path | None = None
    decision: Decision | None = None


def machine_choices(recipe: Recipe) -> list[Choice]:
    """Set the options ``recipe`` leaves to ``auto`` that depend on this machine (the training precision), in
    place, and return each choice with its reason (for the run's record and log)."""
    choice = choose_precision(recipe.precision, cpu_features(), resolve_device(recipe.device), torch_uses_amx())
    recipe.precision = Precision(choice.value)
    return [choice] if choice.changed else []


def check_recipe(recipe: Recipe, datasets: DatasetStore) -> None:
    """Refuse a recipe before anything runs: what needs this machine (device, precision) and the datasets.

    The components (loss, miner, optimizer and their options) were checked by ``Recipe.validate``.
    """
    device = resolve_device(recipe.device)
    if launch_wanted(recipe):
        from tunerflow.runs.launch import check_launch

        check_launch(recipe)
    if recipe.precision == Precision.FP16 and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; on the CPU use fp32 or bf16")
    train_set = datasets.get(recipe.train_data)
    labels = train_set.labels()
    held_out = validation_held_out(recipe, labels)
    make_sampler(recipe, labels, ~held_out)
    for name in (recipe.eval_query_data, recipe.eval_index_data, recipe.eval_data):
        if name is not None and len(datasets.get(name)) == 0:
            raise ConfigError(f"evaluation dataset {name!r} is empty")
    if recipe.eval_data:
        validation_batches(_BatchRules(recipe), datasets.get(recipe.eval_data).labels())
    elif held_out.any():
        validation_batches(_BatchRules(recipe), labels, held_out)


@dataclass
class _BatchRules:
    """What :func:`validation_batches` reads of a setup, for checking before one is built."""

    recipe: Recipe


def validation_held_out(recipe: Recipe, labels: np.ndarray) -> np.ndarray:
    """The records of ``train_data`` held out for val_loss (``val_split`` of its labels; none with eval_data)."""
    share = 0.0 if recipe.eval_data else recipe.val_split
    return held_out_labels(labels, share, recipe.seed)


def make_sampler(
    recipe: Recipe, labels: np.ndarray, keep: np.ndarray, neighbours: np.ndarray | None = None
) -> LabelBalancedBatches | RandomBatches:
    """The training batches of ``recipe.sampler`` over the records in ``keep``.

    ``sampler: hard`` needs the labels' ``neighbours``; without them (checking a recipe before the
    model is loaded) its label-balanced batches, which hold the same texts, stand in.
    """
    if recipe.sampler == Sampler.RANDOM:
        return RandomBatches(labels, recipe.batch_size, recipe.seed, keep)
    if recipe.sampler == Sampler.HARD and neighbours is not None:
        m = recipe.num_items_per_class
        return HardBatches(labels, recipe.batch_size, m, recipe.seed, keep, neighbours=neighbours)
    return LabelBalancedBatches(labels, recipe.batch_size, recipe.num_items_per_class, recipe.seed, keep)


def evaluation_set(recipe: Recipe, datasets: DatasetStore) -> EvaluationSet | None:
    if recipe.eval_query_data is None:
        return None
    queries = datasets.get(recipe.eval_query_data).read_all()
    index = datasets.get(recipe.eval_index_data).read_all() if recipe.eval_index_data else None
    return EvaluationSet.from_records(queries, index)


def launch_wanted(recipe: Recipe) -> bool:
    """True when the recipe trains on several processes and this process is not one of them yet."""
    return (recipe.devices != 1 or recipe.nodes > 1) and not launched()


def build_setup(
    recipe: Recipe, datasets: DatasetStore, loaded: LoadedModel, neighbours: np.ndarray | None = None
) -> TrainSetup:
    """Everything the loop needs; in a launched worker, the model under DDP and this rank's share of batches.

    ``loaded`` gets the recipe's projection head (``output_dim``) here, its spec's dimension with it.
    ``neighbours``: the labels' nearest labels, for ``sampler: hard``.
    """
    world = current_world()
    for choice in machine_choices(recipe):  # a recipe that did not come through RunManager.start
        log.info("this machine: %s", choice.describe())
    device = resolve_device(recipe.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
    dataset = datasets.get(recipe.train_data)
    labels = dataset.labels()
    sampler = make_sampler(recipe, labels, ~validation_held_out(recipe, labels), neighbours)
    with_head(loaded, recipe.output_dim)  # after the run's seed: the same initial head on every rank
    model = loaded.model.to(device)
    loss_fn = build_loss(recipe.loss, recipe.loss_options, len(dataset.label_names), model.dimension).to(device)
    miner = build_miner(recipe.miner, recipe.miner_options)
    if recipe.freeze:
        trained = model.freeze()
        log.info("freeze: training only %s", ", ".join(trained))
    loss_optimizer = build_loss_optimizer(
        recipe.loss_optimizer, recipe.loss_optimizer_options, loss_fn, recipe.learning_rate
    )  # None: the loss's parameters (if any) train with the model's optimizer, as they always did
    loss_parameters = [] if loss_optimizer is not None else list(loss_fn.parameters())
    parameters = [p for p in model.parameters() if p.requires_grad] + loss_parameters
    optimizer = build_optimizer(recipe.optimizer, optimizer_options(recipe, device), parameters, recipe.learning_rate)
    scaler = torch.amp.GradScaler("cuda") if recipe.precision == Precision.FP16 else None
    kernel = choose_linear_kernel(recipe.linear_kernel, cpu_features(), device)
    if kernel == LinearKernel.ONEDNN and recipe.precision == Precision.FP32:
        log.info(
            "linear_kernel %s: float32 linear layers on oneDNN (%s CPU: MKL's fast kernels are Intel's)",
            recipe.linear_kernel.value,
            cpu_features().vendor,
        )
    dropout = choose_dropout_kernel(recipe.dropout_kernel, device)
    forward = wrap_model(StepForward(model, kernel, dropout), world, device)  # one lookup of token vectors per step
    if world.rank > 0:
        torch.manual_seed(recipe.seed + world.rank)  # its own dropout; the weights are rank 0's (DDP broadcast them)
    return TrainSetup(
        recipe=recipe,
        model=model,
        tokenizer=loaded.tokenizer,
        loss_fn=loss_fn,
        miner=miner,
        optimizer=optimizer,
        sampler=sampler,
        dataset=dataset,
        labels=labels,
        device=device,
        scaler=scaler,
        world=world,
        forward=forward,
        loss_optimizer=loss_optimizer,
    )


def optimizer_options(recipe: Recipe, device: torch.device) -> dict:
    """The recipe's optimizer options, with ``fused=True`` where the optimizer has a fused kernel for ``device``.

    One kernel updates every parameter instead of a loop of small ones per parameter (bench/RESULTS.md,
    "Where a training step's time goes"). torch has fused Adam, AdamW, SGD and Adagrad for CUDA and,
    since 2.4, the CPU; an optimizer or device without one keeps torch's own default. The user's
    ``fused`` or ``foreach`` wins.
    """
    options = dict(recipe.optimizer_options)
    if "fused" not in options and "foreach" not in options and _has_fused_kernel(recipe.optimizer, device):
        options["fused"] = True
    return options


def _has_fused_kernel(name: str, device: torch.device) -> bool:
    import inspect

    cls = getattr(torch.optim, name)
    if "fused" not in inspect.signature(cls.__init__).parameters:
        return False
    try:  # the optimizer's own check, on a one-element stand-in on the device
        cls([torch.nn.Parameter(torch.zeros(1, device=device))], lr=1e-3, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def execute_run(run: RunContext) -> RunOutcome:
    """Train ``run.recipe`` (resuming from its checkpoint if there is one), save the artifact, decide its serving."""
    try:
        return _execute(run)
    except Interrupted as stop:
        run.log.info("stopped during evaluation or planning: %s", stop.reason.value)
        status = RunStatus.CANCELLED if stop.reason is StopReason.CANCELLED else RunStatus.STARTED
        return RunOutcome(status, {})


def check_stop(run: RunContext, local: bool = False) -> None:
    """Raise :class:`Interrupted` if the run was cancelled or the process is shutting down.

    ``local``: called by this process alone (not by every rank at once), so ``run.local_stop_reason`` is asked.
    """
    reason = (run.local_stop_reason if local and run.local_stop_reason else run.stop_reason)()
    if reason is not None:
        raise Interrupted(reason)


def stoppable(embed: Callable[[list[str]], object], run: RunContext) -> Callable[[list[str]], object]:
    """``embed`` in slices of :data:`STOP_CHECK_TEXTS` texts, looking at the cancel flag before each."""
    import numpy as np

    def embed_in_slices(texts: list[str]):
        parts = []
        for start in range(0, max(len(texts), 1), STOP_CHECK_TEXTS):
            check_stop(run, local=True)
            parts.append(embed(texts[start : start + STOP_CHECK_TEXTS]))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    return embed_in_slices


def _execute(run: RunContext) -> RunOutcome:
    recipe, log = run.recipe, run.log
    if launch_wanted(recipe):  # several processes: torchrun starts them, each runs this function
        from tunerflow.runs.launch import run_launched

        return run_launched(run)
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    loaded = load_model(model_source(run), pooling=recipe.pooling, max_length=recipe.max_length)
    if recipe.probe and launched():
        log.info("probe: skipped in a launched (torchrun) run; the recipe trains as it is")
    elif recipe.probe:
        probe_recipe(run, loaded)  # the starting model as loaded (no new head): its choice goes into the recipe
    neighbours = None
    if recipe.sampler == Sampler.HARD:  # by the model as loaded, before any training (and kept for a resume)
        dataset = run.datasets.get(recipe.train_data)
        keep = ~validation_held_out(recipe, dataset.labels())
        neighbours = hard_batch_neighbours(recipe, loaded, dataset, keep, run.directory, current_world(), log)
    setup = build_setup(recipe, run.datasets, loaded, neighbours)
    start_weights = weights_copy(setup.model) if recipe.wiseft_alpha is not None else None  # before a resume
    checkpoint_dir = run.directory / "checkpoint"
    state = resume_state(checkpoint_dir, setup, log, lambda: check_stop(run))
    spec = loaded.spec
    run.progress = Progress(log, sink=run.progress_sink)
    selection = build_selection(run, setup, loaded)
    callbacks = [run.progress, Cancel(run.stop_reason), Checkpoint(checkpoint_dir, log, keep=recipe.keep_checkpoints)]
    started = time.monotonic()
    train(setup, state, callbacks, selection)
    if state.stop_reason is StopReason.CANCELLED:
        return RunOutcome(RunStatus.CANCELLED, summarize(state, recipe))
    if state.stop_reason is StopReason.SHUTDOWN:
        return RunOutcome(RunStatus.STARTED, summarize(state, recipe))
    if selection is not None:
        selection.restore_best(setup.model, state)
    if start_weights is not None:
        interpolate_weights(setup.model, start_weights, recipe.wiseft_alpha)
        log.info("WiSE-FT: %.3g * tuned + %.3g * starting weights", recipe.wiseft_alpha, 1 - recipe.wiseft_alpha)
        if selection is not None and setup.world.is_main:
            selection.after_averaging(state)  # "after" and the publication gate then describe the average
    metrics = summarize(state, recipe)
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    if not setup.world.is_main:
        return RunOutcome(RunStatus.FINISHED, metrics)  # rank 0 saves the artifact
    tuned = LoadedModel(setup.model.cpu().eval(), loaded.tokenizer, spec, loaded.path)
    artifact = save_run_artifact(run, tuned, state, metrics)
    decision = decide(recipe.publish, metrics)
    log.info("%s", "to be served: " + decision.reason if decision.promote else decision.reason)
    return RunOutcome(RunStatus.FINISHED, metrics, artifact, decision)


def probe_recipe(run: RunContext, loaded: LoadedModel) -> None:
    """Run the probe (:mod:`tunerflow.runs.probe`: how well the starting model already retrieves labels held
    out of the training data), or take its kept result on a resume, and apply its choice to ``run.recipe`` in
    place; ``run.on_probe`` hears it. Embedding draws nothing from the random generators, so the run then
    trains as one whose recipe named the choice. Raises :class:`Interrupted` when the run is cancelled or
    shut down while probing."""
    recipe, log = run.recipe, run.log
    result = load_result(run.directory)
    if result is None:
        dataset = run.datasets.get(recipe.train_data)
        keep = ~validation_held_out(recipe, dataset.labels())
        embed = starting_model_embedder(recipe, loaded).embed
        result = run_probe(recipe, dataset, keep, stoppable(embed, run), log)
        if result is None:
            return
        save_result(run.directory, result)
    log.info("probe: %s", result.describe())
    for option, value in result.changes.items():
        setattr(recipe, option, value)
    if run.on_probe is not None:
        run.on_probe(result.to_dict(), recipe)


def model_source(run: RunContext) -> ModelSource | str | Path:
    """What the run fine-tunes: ``model_artifact`` (a finished run's artifact here), else the resolved model."""
    recipe = run.recipe
    if recipe.model_artifact is None:
        return run.model or recipe.model
    artifact = run.artifacts / recipe.model_artifact
    if not artifact.is_dir():
        raise ArtifactError(
            f"model_artifact {recipe.model_artifact!r}: no finished run of that name has an artifact here",
            str(artifact),
        )
    run.log.info("continuing from the artifact of run %s (model %s is not used)", recipe.model_artifact, recipe.model)
    return artifact


def build_selection(run: RunContext, setup: TrainSetup, loaded: LoadedModel) -> Selection | None:
    """The evaluation after each epoch (retrieval metrics, val_loss) and the monitor's decisions; None: none."""
    recipe = run.recipe
    if not recipe.selects:
        return None  # nothing to evaluate
    eval_set = evaluation_set(recipe, run.datasets)
    validation = None
    if recipe.eval_data:
        validation = ValidationLoss(setup, run.datasets.get(recipe.eval_data))
    elif recipe.val_split > 0:
        validation = ValidationLoss(setup, setup.dataset, validation_held_out(recipe, setup.labels))
    embedder = None
    if eval_set is not None:
        dtype = DType.BFLOAT16 if recipe.precision == "bf16" else DType.FLOAT32
        embedder = TorchBackend(
            loaded,
            device=str(setup.device),
            dtype=dtype,
            batch_size=recipe.eval_batch_size,
            linear_kernel=step_forward_of(setup).kernel,  # the kernel the training step chose
        )

    def current_metrics() -> dict:
        setup.model.eval()  # the loop puts it back in training mode at the next epoch
        metrics = {}
        if embedder is not None:
            metrics = evaluate(
                stoppable(embedder.embed, run),
                eval_set,
                limit=recipe.eval_limit,
                exclude_self=recipe.eval_exclude_self,
                distance=recipe.eval_distance,
            )
        if validation is not None:
            check_stop(run, local=True)
            metrics["val_loss"] = validation()
        return metrics

    best_path = run.directory / "best.safetensors" if recipe.keep_best else None
    return Selection(
        current_metrics,
        recipe.monitored,
        run.log,
        best_path,
        recipe.early_stopping_patience,
        minimise=recipe.monitor_minimises,
        min_delta=recipe.early_stopping_min_delta,
        baseline=recipe.early_stopping_baseline,
    )


def resume_state(
    checkpoint_dir: Path, setup: TrainSetup, log: logging.Logger, check: Callable[[], None] = lambda: None
) -> TrainState:
    """The state saved in ``checkpoint_dir`` (setup restored from it), or a fresh one for the recipe's epochs.

    ``check`` runs before each epoch's batches are planned (it raises to stop).
    """
    if not (checkpoint_dir / "state.json").is_file():
        steps = []
        for epoch in range(setup.recipe.epochs):
            check()
            steps.append(len(setup.batches(epoch)))
        return TrainState(steps_per_epoch=steps)
    state = load_checkpoint(checkpoint_dir, setup)
    where = f", at batch {state.batch_in_epoch} of epoch {state.epoch + 1}" if state.batch_in_epoch else ""
    log.info("resuming from the checkpoint after epoch %d (step %d)%s", state.epoch, state.step, where)
    if state.stop_reason is not None and state.stop_reason.interrupts:
        state.stop_reason = None  # the interruption is over; an early stop stays
    return state


def summarize(state: TrainState, recipe: Recipe) -> dict:
    """Metrics before, per epoch and after, under the reference tool's names, plus losses."""
    before = next((e["metrics"] for e in state.evaluations if e["stage"] == "before"), None)
    epochs = [{"epoch": e["epoch"], "metrics": e["metrics"]} for e in state.evaluations if e["stage"] == "epoch"]
    chosen = state.best_epoch if recipe.keep_best and state.best_epoch else (epochs[-1]["epoch"] if epochs else None)
    after = next((e["metrics"] for e in epochs if e["epoch"] == chosen), None)
    averaged = next((e["metrics"] for e in state.evaluations if e["stage"] == "averaged"), None)
    return {
        "primary_metric": recipe.best_metric,
        "before": before,
        "epochs": epochs,
        "after": averaged or after,  # what is published: the WiSE-FT average, when there is one
        "after_epoch": chosen,
        "averaged": averaged is not None,
        "epoch_losses": state.epoch_losses,
        "steps": state.step,
        "total_steps": state.total_steps,
        "stop_reason": state.stop_reason.value if state.stop_reason else None,
    }


def save_run_artifact(run: RunContext, tuned: LoadedModel, state: TrainState, metrics: dict) -> Path:
    """Save the artifact with its plot, metadata and precision checks and zip it (serving it is the manager's)."""
    recipe = run.recipe
    plot = plot_run(state, recipe.best_metric, run.directory / "training.png")
    run_meta = {
        "run_name": run.name,
        "experiment_name": recipe.experiment_name,
        "description": recipe.description,
        "recipe": recipe.to_dict(),
        "train_data": run.datasets.get(recipe.train_data).summary(),
        "metrics": metrics,
        "data_aware": run.data_aware or [],
    }
    target = run.artifacts / run.name
    if target.exists():
        shutil.rmtree(target)
    probe = None
    if recipe.int8 and recipe.eval_query_data:
        queries = run.datasets.get(recipe.eval_query_data)
        probe = [r.text for r in queries.read(range(min(64, len(queries))))]
    run.log.info("saving the artifact%s", " with ONNX" if recipe.to_onnx else "")
    quality = quality_probe(recipe, evaluation_set(recipe, run.datasets), run.datasets.get(recipe.train_data))
    save_artifact(
        tuned,
        target,
        run=run_meta,
        to_onnx=recipe.to_onnx,
        int8=recipe.int8,
        probe_texts=probe,
        extra_files={"training.png": plot},
        zip=True,
        check_precision=precision_checker(quality, run.log, guard=lambda embed: stoppable(embed, run)),
    )
    run.log.info("saved the artifact %s", run.name)
    return target
