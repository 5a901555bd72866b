"""``val_loss``: the training loss on held-out labelled data, without gradients, after every epoch.

The held-out data is ``eval_data`` (a stored dataset) or, with ``val_split``, whole
labels of the training data that the training batches leave out. Its batches are
label-balanced like the training ones and fixed for the run (the same every epoch),
so the values of two epochs compare.
"""

from __future__ import annotations

import numpy as np
import torch

from tunerflow.data.sampler import LabelBalancedBatches
from tunerflow.data.store import Dataset
from tunerflow.errors import DataError
from tunerflow.inference.batching import tokenize
from tunerflow.training.state import TrainSetup
from tunerflow.training.step_forward import step_forward_of


def validation_batches(setup: TrainSetup, labels: np.ndarray, keep: np.ndarray | None = None) -> list[np.ndarray]:
    """The fixed batches of the validation records (``keep``: which of ``labels`` are validation records)."""
    recipe = setup.recipe
    try:
        sampler = LabelBalancedBatches(labels, recipe.batch_size, recipe.num_items_per_class, recipe.seed + 1, keep)
    except DataError as error:
        raise DataError(f"validation data: {error}") from None
    return sampler.epoch(0)


class ValidationLoss:
    """Computes ``val_loss`` of ``setup.model`` on ``dataset`` (the records in ``keep``; None: all)."""

    def __init__(self, setup: TrainSetup, dataset: Dataset, keep: np.ndarray | None = None) -> None:
        self.setup, self.dataset = setup, dataset
        self.labels = dataset.labels()
        self.batches = validation_batches(setup, self.labels, keep)
        self._token_ids: dict[int, np.ndarray] = {}
        self.forward = step_forward_of(setup)  # the training step's, never DDP's: only rank 0 validates

    def _ids(self, positions: np.ndarray) -> list[np.ndarray]:
        missing = [int(p) for p in positions if int(p) not in self._token_ids]
        if missing:
            texts = [record.text for record in self.dataset.read(missing)]
            for position, ids in zip(
                missing, tokenize(self.setup.tokenizer, texts, self.setup.recipe.max_length), strict=True
            ):
                self._token_ids[position] = np.asarray(ids, dtype=np.int32)
        return [self._token_ids[int(p)] for p in positions]

    def __call__(self) -> float:
        setup = self.setup
        model, dtype = setup.model, setup.autocast_dtype
        model.eval()  # the loop puts it back in training mode at the next epoch
        total, count = 0.0, 0
        with torch.no_grad():
            for positions in self.batches:
                with torch.autocast(setup.device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                    embeddings = self.forward(setup.chunks(self._ids(positions)), len(positions))
                labels = torch.from_numpy(self.labels[positions].astype("int64")).to(setup.device)
                mined = setup.miner(embeddings, labels) if setup.miner is not None else None
                total += float(setup.loss_fn(embeddings, labels, mined)) * len(positions)  # a sync per batch
                count += len(positions)
        return total / max(count, 1)
