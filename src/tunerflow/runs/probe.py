"""The probe: before a run on pair data trains, measure how well the starting model already retrieves labels
held out of the training data; when it already ranks nearly every pair first, train gently.

Why: on pair data the data statistics do not tell which recipe gains (bench/RESULTS.md, issue 13, "Pairs
the model already knows"). On Quora, a domain the bundled model was trained on, the data-aware default
(MultiSimilarityLoss at 1e-4) lost 0.002 average precision on texts held out of the train split where
NTXentLoss at 2e-5 gained 0.0057, and on the whole train split, 3 epochs, NTXentLoss at 2e-5 reached dev MRR
0.9853 where the default ended below the starting model; on WikiAnswers the default gained 0.0144 against
0.0070 held out, and 0.0259 against 0.0238 on the dev split. (The default there was MultiSimilarityLoss at
1e-4 with m 2; pair data of 10,000 texts or more now keeps config.yml's 3e-5 and m 4, which gained more on
WikiAnswers: :data:`~tunerflow.training.data_defaults.MANY_PAIRS_TEXTS`.) Short trial runs of both recipes did not tell
the two sets apart (NTXentLoss was ahead on both slices, by 0.0020 and 0.0014, about the slices' noise); how
well the starting model already does did: average precision 0.976 on labels held out of Quora's train split,
0.848 on WikiAnswers'.

How: a seeded slice of whole labels of the training data (never the evaluation sets) is the probe's queries,
with texts of other labels as distractors in its index, embedded once by the starting model. At or above
:data:`KNOWN_AP` the run trains with :data:`GENTLE` instead of its loss and rate. The result is kept in
``probe.json`` in the run's directory, so a resumed run trains with the same choice without probing again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunerflow.data.store import Dataset
from tunerflow.evaluation import EvaluationSet, evaluate
from tunerflow.evaluation.metrics import metric_key
from tunerflow.training.recipe import Recipe

PROBE_SHARE = 0.2  # of the training labels (with two texts or more) held out as the probe's queries
PROBE_MAX_LABELS = 1_000  # at most this many held-out labels (~2,500 texts of pair data: seconds to embed)
PROBE_MIN_LABELS = 20  # fewer held-out labels measure nothing; the probe is skipped
DISTRACTORS = 3  # texts of other labels in the probe's index per query, as bench/choose_defaults.py --select
PROBE_FILE = "probe.json"

# At or above this average precision on the slice the model already knows the domain. Measured on slices of
# 1,000 held-out labels: Quora 0.975, WikiAnswers (15,001 texts) 0.850; the line sits nearer Quora, so that
# only a model that already ranks nearly every held-out pair first trains gently. Two pair sets place it:
# more would place it better.
KNOWN_AP = 0.95
# The gentle recipe: NTXentLoss at temperature 0.05 without a miner (in-batch negatives, the loss the bundled
# model was trained with) at 2e-5, chosen on texts held out of Quora's train split (+0.0057 average precision
# where the default lost 0.002, bench/RESULTS.md, issue 13), with m 2 as it was measured: pair data of 10,000
# texts or more otherwise keeps config.yml's m 4, and with m 4 Quora's whole train split ended lower
# (RESULTS, "Pairs of 10,000 texts or more").
GENTLE_NAME = "NTXentLoss 2e-5"
GENTLE: dict[str, Any] = {
    "loss": "NTXentLoss",
    "loss_options": {"temperature": 0.05},
    "miner": "none",
    "miner_options": {},
    "learning_rate": 2e-5,
    "num_items_per_class": 2,
}


@dataclass
class ProbeResult:
    """What the probe measured (``before``: the starting model's average precision on the slice) and chose:
    ``changes`` to the recipe (none when it trains as it is)."""

    chosen: str
    changes: dict[str, Any]
    before: float
    threshold: float
    queries: int
    index: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def describe(self) -> str:
        where = f"average precision {self.before:.5f} on {self.queries} held-out training texts ({self.index} indexed)"
        if self.changes:
            return f"{self.chosen}: the starting model already knows this data ({where} >= {self.threshold:g})"
        return f"{self.chosen} kept: the starting model has room to learn ({where} < {self.threshold:g})"


@dataclass
class ProbeSplit:
    """Boolean masks over the training records: the probe's queries, and the distractors added to its index
    (the queries are in it too)."""

    queries: np.ndarray
    distractors: np.ndarray


def probe_split(labels: np.ndarray, keep: np.ndarray, seed: int) -> ProbeSplit | None:
    """The probe's split of the records in ``keep`` (the others are never used); None when fewer than
    :data:`PROBE_MIN_LABELS` labels could be held out.

    The held-out labels are a seeded :data:`PROBE_SHARE` of those with two texts or more (at most
    :data:`PROBE_MAX_LABELS`): their texts are the queries, each the others' match. The distractors,
    :data:`DISTRACTORS` per query (as many as there are), are seeded texts of the other labels.
    """
    labels = np.asarray(labels)
    names, counts = np.unique(labels[keep], return_counts=True)
    with_pairs = names[counts >= 2]
    count = min(PROBE_MAX_LABELS, round(PROBE_SHARE * len(with_pairs)))
    if count < PROBE_MIN_LABELS:
        return None
    rng = np.random.default_rng([seed, 17])
    queries = keep & np.isin(labels, rng.choice(with_pairs, size=count, replace=False))
    others = np.flatnonzero(keep & ~queries)
    distractors = np.zeros(len(labels), dtype=bool)
    distractors[rng.permutation(others)[: DISTRACTORS * int(queries.sum())]] = True
    return ProbeSplit(queries, distractors)


def gentle_changes(recipe: Recipe) -> dict[str, Any]:
    """What :data:`GENTLE` changes in ``recipe`` (empty when the recipe already is it)."""
    return {key: value for key, value in GENTLE.items() if getattr(recipe, key) != value}


def load_result(directory: Path) -> ProbeResult | None:
    path = directory / PROBE_FILE
    return ProbeResult.from_dict(json.loads(path.read_text())) if path.is_file() else None


def save_result(directory: Path, result: ProbeResult) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{PROBE_FILE}.partial"
    partial.write_text(json.dumps(result.to_dict(), indent=2))
    partial.replace(directory / PROBE_FILE)


def run_probe(
    recipe: Recipe,
    dataset: Dataset,
    keep: np.ndarray,
    embed: Callable[[list[str]], np.ndarray],
    log: logging.Logger,
) -> ProbeResult | None:
    """Measure the starting model (``embed``) on a slice of ``dataset``'s records in ``keep`` and choose; None
    when too few labels could be held out."""
    split = probe_split(dataset.labels(), keep, recipe.seed)
    if split is None:
        log.info("probe: skipped, fewer than %d labels with two texts could be held out", PROBE_MIN_LABELS)
        return None
    started = time.monotonic()
    queries = dataset.read(np.flatnonzero(split.queries))
    index = queries + dataset.read(np.flatnonzero(split.distractors))
    data = EvaluationSet.from_records(queries, index)  # a query's own text is in the index: excluded
    metrics = evaluate(embed, data, limit=recipe.eval_limit, exclude_self=True, distance=recipe.eval_distance)
    before = round(float(metrics[metric_key("average_precision")]), 6)
    changes = gentle_changes(recipe) if before >= KNOWN_AP else {}
    return ProbeResult(
        chosen=GENTLE_NAME if changes else f"{recipe.loss} {recipe.learning_rate:g}",
        changes=changes,
        before=before,
        threshold=KNOWN_AP,
        queries=len(queries),
        index=len(index),
        seconds=round(time.monotonic() - started, 1),
    )
