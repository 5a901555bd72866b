"""``sampler: hard``: each label's nearest labels by the starting model, computed once per run.

Rank 0 embeds up to :data:`TEXTS_PER_LABEL` texts of every training label with the
model as loaded (before any training), averages them into label centroids and
ranks each label's neighbours (:func:`tunerflow.data.sampler.label_neighbours`).
The ranking is saved in the run's directory and sent to every rank, so all ranks
plan the same batches, and a resumed run (whose model has trained since) plans
the batches it planned before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tunerflow.artifact import LoadedModel
from tunerflow.data.sampler import label_neighbours
from tunerflow.data.store import Dataset
from tunerflow.inference.cpu import cpu_features
from tunerflow.inference.cpu_linear import choose_linear_kernel
from tunerflow.inference.torch_backend import TorchBackend, resolve_device
from tunerflow.options import DType
from tunerflow.training.distributed import World
from tunerflow.training.recipe import Recipe

NEIGHBOURS_FILE = "hard_batches.npy"
TEXTS_PER_LABEL = 4  # texts embedded per label for its centroid: Quora's 46,800 labels cost ~117,000 texts


def neighbour_count(recipe: Recipe) -> int:
    """Neighbours kept per label: twice the labels a batch holds."""
    return 2 * max(2, recipe.batch_size // recipe.num_items_per_class)


def starting_model_embedder(recipe: Recipe, loaded: LoadedModel) -> TorchBackend:
    """The model as loaded (before any training) embedding in the run's precision, on its device, with the
    linear kernel chosen for this CPU: what hard batches and the recipe probe read. It puts the model in eval
    mode; the training loop sets train mode again at each epoch."""
    device = resolve_device(recipe.device)
    return TorchBackend(
        loaded,
        device=str(device),
        dtype=DType.BFLOAT16 if recipe.precision == "bf16" else DType.FLOAT32,
        batch_size=recipe.eval_batch_size,
        linear_kernel=choose_linear_kernel(recipe.linear_kernel, cpu_features(), device),
    )


def hard_batch_neighbours(
    recipe: Recipe,
    loaded: LoadedModel,
    dataset: Dataset,
    keep: np.ndarray,
    directory: Path,
    world: World,
    log: logging.Logger,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """Every label's nearest training labels (label numbers, nearest first, -1 pads), the same on every rank.

    ``embed``: texts to embeddings (default: the loaded model on the recipe's device); ``keep``: the
    training records (the validation slice's labels are nobody's neighbours).
    """
    path = directory / NEIGHBOURS_FILE
    neighbours = None
    if world.is_main:
        if path.is_file():
            neighbours = np.load(path, allow_pickle=False)
            log.info("hard batches: label neighbours from the run's start (%s)", NEIGHBOURS_FILE)
        else:
            started = time.monotonic()
            neighbours = _compute(recipe, loaded, dataset, keep, embed)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{NEIGHBOURS_FILE}.partial.npy")
            np.save(partial, neighbours)
            partial.replace(path)
            log.info(
                "hard batches: %d labels' nearest labels by the starting model (%.0f s)",
                int((neighbours[:, 0] >= 0).sum()) if neighbours.size else 0,
                time.monotonic() - started,
            )
    return world.from_main(neighbours)


def _compute(
    recipe: Recipe,
    loaded: LoadedModel,
    dataset: Dataset,
    keep: np.ndarray,
    embed: Callable[[list[str]], np.ndarray] | None,
) -> np.ndarray:
    labels = dataset.labels()
    count = len(dataset.label_names)
    usable = np.bincount(labels[keep], minlength=count) >= 2
    positions = np.flatnonzero(keep)
    order = positions[np.argsort(labels[positions], kind="stable")]
    _, starts = np.unique(labels[order], return_index=True)
    chosen = np.concatenate([order[start : start + TEXTS_PER_LABEL] for start in starts])
    if embed is None:
        embed = starting_model_embedder(recipe, loaded).embed
    vectors = np.asarray(embed([record.text for record in dataset.read(chosen)]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    centroids = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    np.add.at(centroids, labels[chosen], vectors)
    return label_neighbours(centroids, usable, neighbour_count(recipe))
