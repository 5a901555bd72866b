"""Label-balanced batches: every batch holds groups of up to ``m`` texts per label.

Metric-learning losses need positives in the batch. Streamed data arrives in
arbitrary order and request sizes, so the batches are made here, from the
stored labels alone, deterministically for a seed and an epoch (which also
makes resuming at a given batch exact).
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

import numpy as np

from tunerflow.errors import ConfigError, DataError

T = TypeVar("T")


def whole_clusters(items: Iterable[T], limit: int, label: Callable[[T], Hashable], seed: int | None = None) -> list[T]:
    """Whole label clusters until at least ``limit`` items: labels in first-seen order, or
    sorted and shuffled with ``seed``. A subset for training keeps every positive of a label."""
    by_label: dict[Hashable, list[T]] = defaultdict(list)
    for item in items:
        by_label[label(item)].append(item)
    labels = list(by_label)
    if seed is not None:
        labels = sorted(labels)
        random.Random(seed).shuffle(labels)
    chosen: list[T] = []
    for key in labels:
        if len(chosen) >= limit:
            break
        chosen.extend(by_label[key])
    return chosen


def check_m_per_class(batch_size: int, m: int) -> None:
    """The one rule of label-balanced batches: ``m >= 2`` texts per label (a positive pair) and
    ``batch_size >= 2 * m`` (two labels per batch, so that there are negatives)."""
    if m < 2:
        raise ConfigError(f"num_items_per_class must be at least 2 (a positive pair), got {m}")
    if batch_size < 2 * m:
        raise ConfigError(
            f"batch_size {batch_size} is too small for num_items_per_class {m}: it must be at least "
            f"2 * num_items_per_class = {2 * m} so that a batch holds two labels"
        )


class LabelBalancedBatches:
    """Batches of record positions for each epoch.

    Each epoch, every label with at least two texts is shuffled and cut into
    groups of ``m`` (a last group of one is left for another epoch); the groups
    are shuffled and packed into batches of at most ``batch_size``, one group
    per label and batch. Labels with a single text cannot form a positive pair
    and are not used.

    Args:
        labels: the label number of every record.
        batch_size: texts per batch; at least ``2 * m``, so a batch holds two labels.
        m: texts per label in a batch (``num_items_per_class``).
        seed: with the epoch number, fixes the order.
        keep: the records to batch (a boolean mask over ``labels``); None: all of them.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, m: int, seed: int, keep: np.ndarray | None = None) -> None:
        check_m_per_class(batch_size, m)
        self.batch_size, self.m, self.seed = int(batch_size), int(m), int(seed)
        labels = np.asarray(labels)
        positions = np.arange(len(labels)) if keep is None else np.flatnonzero(keep)
        order = positions[np.argsort(labels[positions], kind="stable")]
        _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        self.groups = [order[s : s + c] for s, c in zip(starts, counts, strict=True) if c >= 2]
        self.group_labels = np.asarray([labels[group[0]] for group in self.groups], dtype=np.int64)
        if len(self.groups) < 2:
            raise DataError(
                f"the training data has {len(self.groups)} label(s) with two or more texts; "
                "metric learning needs at least two labels that each have a pair"
            )
        self.unused = int(counts[counts < 2].sum())
        self.usable = int(sum(len(g) for g in self.groups))

    def _chunks(self, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
        """Each label's texts shuffled and cut into chunks of ``m`` (of two texts or more), with their group."""
        chunks, owners = [], []
        for label, group in enumerate(self.groups):
            shuffled = rng.permutation(group)
            for chunk in np.array_split(shuffled, range(self.m, len(shuffled), self.m)):
                if len(chunk) >= 2:
                    chunks.append(chunk)
                    owners.append(label)
        return chunks, owners

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The batches of ``epoch`` (0-based), the same every time for the same seed.

        A batch takes one group per label at most: a group whose label is already
        in the batch waits for the next batch (at the end of the epoch, such
        leftovers of very large labels are dropped until a later epoch).
        """
        rng = np.random.default_rng([self.seed, epoch])
        chunks, owners = self._chunks(rng)
        batches: list[np.ndarray] = []
        current: list[np.ndarray] = []
        used: set[int] = set()
        deferred: list[int] = []

        def place(index: int) -> None:
            if owners[index] in used or sum(map(len, current)) + len(chunks[index]) > self.batch_size:
                deferred.append(index)
            else:
                current.append(chunks[index])
                used.add(owners[index])

        def flush() -> None:
            if len(used) >= 2:
                batches.append(np.concatenate(current))
            current.clear()
            used.clear()

        for index in rng.permutation(len(chunks)):
            if sum(map(len, current)) + len(chunks[index]) > self.batch_size:
                flush()
                waiting = deferred[:]
                deferred.clear()
                for earlier in waiting:
                    place(earlier)
            place(index)
        flush()
        return batches


class HardBatches(LabelBalancedBatches):
    """Label-balanced batches whose labels are close by the starting model (``sampler: hard``).

    The chunks of an epoch are those of :class:`LabelBalancedBatches` (the same texts, the same
    seed); only their packing differs. Chunks are taken in a seeded random order; each untaken one
    seeds a batch, which is filled with a chunk of each of the seed label's nearest labels
    (``neighbours``, nearest first) while they have chunks left and the batch has room, then
    with other chunks in the random order. So the loss sees the labels the model confuses, each
    text at most once per epoch; a batch of a single label (the end of an epoch) is dropped.

    Args:
        labels, batch_size, m, seed, keep: as :class:`LabelBalancedBatches`.
        neighbours: for every label number, label numbers nearest first (-1 pads), e.g. from
            :func:`label_neighbours`; fixed for the run, so every epoch is reproducible.
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int,
        m: int,
        seed: int,
        keep: np.ndarray | None = None,
        *,
        neighbours: np.ndarray,
    ) -> None:
        super().__init__(labels, batch_size, m, seed, keep)
        neighbours = np.asarray(neighbours)
        group_of = np.full(max(int(neighbours.shape[0]), int(self.group_labels.max()) + 1), -1, dtype=np.int64)
        group_of[self.group_labels] = np.arange(len(self.groups))
        near = neighbours[self.group_labels]
        near = np.where(near >= 0, group_of[np.clip(near, 0, None)], -1)
        self.near = [row[row >= 0] for row in near]

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        chunks, owners = self._chunks(rng)
        by_group: list[list[int]] = [[] for _ in self.groups]
        for index, owner in enumerate(owners):
            by_group[owner].append(index)
        taken = np.zeros(len(chunks), dtype=bool)
        cursor = [0] * len(self.groups)  # by_group[g][:cursor[g]] are taken (or were skipped as taken)
        order = rng.permutation(len(chunks))

        def next_of(group: int) -> int | None:
            while cursor[group] < len(by_group[group]) and taken[by_group[group][cursor[group]]]:
                cursor[group] += 1
            return by_group[group][cursor[group]] if cursor[group] < len(by_group[group]) else None

        batches, fill = [], 0
        for first in order:
            if taken[first]:
                continue
            batch, groups, size = [first], {owners[first]}, len(chunks[first])
            taken[first] = True
            nearest = (next_of(int(group)) for group in self.near[owners[first]])
            for index in itertools.chain(nearest, (int(i) for i in order[fill:])):
                if size >= self.batch_size:
                    break
                if index is None or taken[index] or owners[index] in groups:
                    continue
                if size + len(chunks[index]) <= self.batch_size:
                    batch.append(index)
                    groups.add(owners[index])
                    size += len(chunks[index])
                    taken[index] = True
            while fill < len(order) and taken[order[fill]]:
                fill += 1
            if len(groups) >= 2:
                batches.append(np.concatenate([chunks[i] for i in batch]))
        return batches


def label_neighbours(centroids: np.ndarray, usable: np.ndarray, count: int, block: int = 1024) -> np.ndarray:
    """For every label (row of ``centroids``), the ``count`` usable labels with the most similar
    centroids (cosine), nearest first; ties by label number; -1 pads and fills the rows of unusable labels."""
    vectors = np.asarray(centroids, dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    candidates = np.flatnonzero(usable)
    count = min(count, max(len(candidates) - 1, 0))
    result = np.full((len(vectors), count), -1, dtype=np.int64)
    if count == 0:
        return result
    pool = vectors[candidates]
    for start in range(0, len(candidates), block):
        rows = candidates[start : start + block]
        similar = vectors[rows] @ pool.T
        similar[np.arange(len(rows)), np.arange(start, start + len(rows))] = -np.inf  # not its own neighbour
        top = np.argpartition(-similar, count - 1, axis=1)[:, :count]
        for row, label, picks in zip(similar, rows, top, strict=True):
            ranked = picks[np.lexsort((candidates[picks], -row[picks]))]
            result[label] = candidates[ranked]
    return result


class RandomBatches:
    """Batches of ``batch_size`` records drawn at random, labels ignored (``sampler: random``).

    A batch may hold no positive pair; the losses then contribute nothing for it. Same interface as
    :class:`LabelBalancedBatches`: ``epoch(n)`` is the same every time for the same seed.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int, keep: np.ndarray | None = None) -> None:
        labels = np.asarray(labels)
        self.positions = np.arange(len(labels)) if keep is None else np.flatnonzero(keep)
        if len(self.positions) < 2:
            raise DataError(f"the training data has {len(self.positions)} text(s); a batch needs at least two")
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.groups = [self.positions[labels[self.positions] == label] for label in np.unique(labels[self.positions])]
        self.usable, self.unused = len(self.positions), 0

    def epoch(self, epoch: int) -> list[np.ndarray]:
        shuffled = np.random.default_rng([self.seed, epoch]).permutation(self.positions)
        batches = [shuffled[start : start + self.batch_size] for start in range(0, len(shuffled), self.batch_size)]
        return [batch for batch in batches if len(batch) >= 2]


def held_out_labels(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A boolean mask of the records whose labels (whole labels, a ``share`` of them, at least one) are held out."""
    labels = np.asarray(labels)
    if share <= 0:
        return np.zeros(len(labels), dtype=bool)
    names = np.unique(labels)
    count = min(len(names), max(1, round(share * len(names))))
    chosen = np.random.default_rng([seed, 7]).choice(names, size=count, replace=False)
    return np.isin(labels, chosen)
