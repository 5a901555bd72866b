"""Data-aware defaults: options the user did not set, chosen from the training data's statistics.

A pure function of :class:`DataStatistics` (texts per label, label count, text
lengths in tokens, pairs or clusters) and the recipe's current values. Each
choice carries its reason, for the run's log and record. A rule is here only
when a measurement backs it (config.yml's "Why these defaults", bench/RESULTS.md);
for the other options the default is kept and the reason says that no
measurement ties it to the data's shape yet. Any option the user set wins: it
is never looked at.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Without an evaluation set, data with fewer texts than this gets a validation slice of whole labels, so
# that a run worse than the starting model (by val_loss) is not published. Why 10,000: the slice (10 % of
# the labels, ~1,000 texts) costs ~4 s of embedding per epoch at the ~300 texts/s measured on 2 cores
# (shared/docs/PERFORMANCE.md), a few per cent of an epoch at 65-99 training samples/s; the default was
# measured to gain on 12,800-text subsets of WikiAnswers and Quora (config.yml), while nothing measured
# says that training on fewer texts cannot make things worse.
SMALL_DATA_TEXTS = 10_000
AUTO_VAL_SPLIT = 0.1
AUTO_VAL_MIN_LABELS = 10  # fewer labels with a pair: holding out whole labels leaves too few to train on
PAIR_SHARE = 0.5  # pair data: more than this share of the labels has exactly two texts
LENGTH_STEP = 8  # max_length is rounded up to a multiple of this
LENGTH_PERCENTILE = 99

# With the default loss, data-aware runs train at TUNED_LEARNING_RATE: clusters, and pairs under MANY_PAIRS_TEXTS.
# Chosen on texts held out of the train splits (bench/RESULTS.md "issue 13", 3 epochs, best kept):
# MultiSimilarityLoss at 1e-4 against 3e-5 gained +0.070 against +0.032 average precision on Banking77
# (clusters, 24 training texts per label) and +0.022 against +0.016 on WikiAnswers (pairs, 2,899 texts).
# On Banking77 m = 16 instead of 4 (+0.063) and hard batches (+0.060 at m 16) did not help.
TUNED_LEARNING_RATE = 1e-4
MEASURED_LOSS = "MultiSimilarityLoss"

# Pair data of this many texts or more keeps config.yml's m (4) and learning rate (3e-5). Held out of
# WikiAnswers' train split at 14,210 texts (bench/RESULTS.md "issue 13", 3 epochs, best kept, 4 seeds): m 4
# at 3e-5 gained +0.0227 average precision on average, m 2 at 1e-4 (the small-pairs rule) +0.0212 (ahead in 3
# of 4 seeds; the seeds spread 0.004); one seed each: m 4 at 1e-4 +0.0215, m 2 at 3e-5 +0.0200. At 2,899 texts
# m 2 at 1e-4 gained more (+0.0185 against +0.0159). Five times the steps let the gentler rate go as far, and
# m 4 keeps labels of 3 or 4 texts whole in a batch. Where between 2,899 and 14,210 texts the two cross is not
# measured: the line is SMALL_DATA_TEXTS, where the probe starts.
MANY_PAIRS_TEXTS = SMALL_DATA_TEXTS

# Small cluster data trains for more epochs: as many as a budget of SAMPLE_BUDGET training samples (texts x
# epochs) allows, at least config.yml's epochs and at most MAX_EPOCHS. The budget is the run the time
# limit is set for (15,000 texts, 3 epochs: <= 20 minutes on 2 cores), so a smaller set takes no longer than
# that run. Chosen on texts held out of the train splits (bench/RESULTS.md "issue 13", best epoch kept, lr
# 1e-4): 3 / 6 / 10 epochs gained +0.067 / +0.102 / +0.127 average precision on Banking77 (1,835 texts), but
# only +0.0185 / +0.0188 / +0.0202 on WikiAnswers (2,899 texts, pairs), so pair data keeps its epochs: 3.3x
# the time for +0.002.
SAMPLE_BUDGET = 45_000
MAX_EPOCHS = 10

# The options this module may choose, in the order they are logged.
CHOSEN = ("max_length", "num_items_per_class", "loss", "learning_rate", "probe", "epochs", "val_split")
# Those a rule can change today (loss is logged as kept, with the reason).
RULED = ("max_length", "num_items_per_class", "learning_rate", "probe", "epochs", "val_split")
# What the probe may change (tunerflow.runs.probe): with any of them set by the run it is not turned on.
PROBED = ("loss", "loss_options", "miner", "miner_options", "learning_rate", "num_items_per_class")
NO_MEASUREMENT = "no measurement yet ties it to the data's shape"


@dataclass(frozen=True)
class DataStatistics:
    """What the defaults look at, of the training data.

    Attributes:
        texts: training texts.
        labels: labels with at least one text.
        labels_with_pairs: labels with two or more texts (the ones metric learning can use).
        texts_per_label: min, median, p90 and max texts per label.
        pair_share: share of the labels that have exactly two texts.
        token_lengths: p50, p90, p99 and max tokens per text (special tokens included), of ``sampled`` texts.
        sampled: how many texts the token lengths come from (a seeded sample of large data).
        longer_than: for each multiple of 8 tokens up to the longest text, the share of texts longer.
    """

    texts: int
    labels: int
    labels_with_pairs: int
    texts_per_label: dict[str, float]
    pair_share: float
    token_lengths: dict[str, float]
    sampled: int
    longer_than: dict[int, float]

    @property
    def pairs(self) -> bool:
        """Labels of exactly two texts dominate (query/duplicate pairs, not clusters)."""
        return self.pair_share > PAIR_SHARE

    def to_dict(self) -> dict[str, Any]:
        """JSON- and protobuf-ready (a Struct takes string keys only: ``longer_than``'s token counts become text)."""
        return {**asdict(self), "longer_than": {str(k): v for k, v in self.longer_than.items()}, "pairs": self.pairs}


def data_statistics(label_counts: np.ndarray, token_lengths: np.ndarray) -> DataStatistics:
    """Statistics of data with ``label_counts`` texts per label (zeros ignored) and the ``token_lengths``
    of (a sample of) its texts."""
    counts = np.asarray(label_counts, dtype=np.int64)
    counts = counts[counts > 0]
    lengths = np.asarray(token_lengths, dtype=np.int64)
    if not len(counts) or not len(lengths):
        raise ValueError("data statistics need at least one text")

    def spread(values: np.ndarray, middle: str) -> dict[str, float]:
        return {
            "min": float(values.min()),
            middle: float(np.median(values)),
            "p90": float(np.percentile(values, 90)),
            f"p{LENGTH_PERCENTILE}": float(np.percentile(values, LENGTH_PERCENTILE)),
            "max": float(values.max()),
        }

    return DataStatistics(
        texts=int(counts.sum()),
        labels=len(counts),
        labels_with_pairs=int((counts >= 2).sum()),
        texts_per_label=spread(counts, "median"),
        pair_share=round(float((counts == 2).mean()), 4),
        token_lengths=spread(lengths, "p50"),
        sampled=len(lengths),
        longer_than={
            step: round(float((lengths > step).mean()), 5)
            for step in range(LENGTH_STEP, int(lengths.max()) + LENGTH_STEP, LENGTH_STEP)
        },
    )


@dataclass(frozen=True)
class Choice:
    """One option's data-aware value: ``changed`` when it differs from the default it replaces."""

    option: str
    value: Any
    default: Any
    reason: str

    @property
    def changed(self) -> bool:
        return self.value != self.default

    def describe(self) -> str:
        """``max_length 48 (p99 of ...)``, or ``loss MultiSimilarityLoss kept (...)``."""
        return f"{self.option} {self.value}{'' if self.changed else ' kept'} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def choose(
    stats: DataStatistics,
    current: Mapping[str, Any],
    given: Collection[str],
    *,
    evaluated: bool,
    model_max_length: int,
) -> list[Choice]:
    """The data-aware value and reason of every option in :data:`CHOSEN` that is not in ``given``.

    Args:
        stats: the training data's statistics.
        current: the recipe's values so far (config.yml's defaults where the user gave nothing).
        given: the options the user set; they are left alone.
        evaluated: the run has an evaluation set or eval_data (so it needs no validation slice).
        model_max_length: the model's own maximum tokens per text.
    """
    rules = {
        "max_length": lambda: _max_length(stats, current["max_length"], model_max_length),
        "num_items_per_class": lambda: _items_per_class(stats, current["num_items_per_class"]),
        "loss": lambda: _loss(stats, current, given),
        "learning_rate": lambda: _learning_rate(stats, current),
        "probe": lambda: _probe(stats, current, given),
        "epochs": lambda: _epochs(stats, current["epochs"]),
        "val_split": lambda: _val_split(stats, current["val_split"], evaluated),
    }
    return [rules[name]() for name in CHOSEN if name not in given]


def _loss(stats: DataStatistics, current: Mapping[str, Any], given: Collection[str]) -> Choice:
    probing = current.get("probe") if "probe" in given else _probe(stats, current, given).value
    why = "the probe may change it to NTXentLoss at 2e-5 before training" if probing else NO_MEASUREMENT
    return _kept("loss", current, f"with {current.get('miner') or 'no miner'}; {why}")


def _kept(option: str, current: Mapping[str, Any], why: str) -> Choice:
    return Choice(option, current[option], current[option], f"config.yml's; {why}")


def _max_length(stats: DataStatistics, default: int, model_max: int) -> Choice:
    percentile = stats.token_lengths[f"p{LENGTH_PERCENTILE}"]
    value = min(model_max, max(LENGTH_STEP, LENGTH_STEP * math.ceil(percentile / LENGTH_STEP)))
    capped = f", capped at the model's {model_max}" if value == model_max else ""
    longer = stats.longer_than.get(value, 0.0)
    return Choice(
        "max_length",
        value,
        default,
        f"p{LENGTH_PERCENTILE} of text length is {percentile:g} tokens in {stats.sampled} texts, "
        f"rounded up to a multiple of {LENGTH_STEP}{capped}; {longer:.1%} of them are longer and truncated",
    )


def _many_pairs(stats: DataStatistics) -> str:
    """The reason large pair data keeps config.yml's m and rate ("" for other data)."""
    if not stats.pairs or stats.texts < MANY_PAIRS_TEXTS:
        return ""
    return (
        f"pair data of {stats.texts} texts (>= {MANY_PAIRS_TEXTS}): held out of WikiAnswers' train split at 14,210 "
        "texts m 4 at 3e-5 gained +0.0227 average precision, m 2 at 1e-4 +0.0212 (4 seeds; bench/RESULTS.md, issue 13)"
    )


def _items_per_class(stats: DataStatistics, default: int) -> Choice:
    if many := _many_pairs(stats):
        return Choice("num_items_per_class", default, default, f"config.yml's; {many}")
    if stats.pairs:
        why = f"pair data: {stats.pair_share:.0%} of the labels have exactly 2 texts"
        return Choice("num_items_per_class", 2, default, why)
    median = stats.texts_per_label["median"]
    if median < default:
        value = max(2, int(median))
        return Choice("num_items_per_class", value, default, f"the median label has {median:g} texts")
    return Choice(
        "num_items_per_class",
        default,
        default,
        f"config.yml's; the median label has {median:g} texts; m 16 did not beat 4 on such data (bench/RESULTS.md)",
    )


def _learning_rate(stats: DataStatistics, current: Mapping[str, Any]) -> Choice:
    if current.get("loss") != MEASURED_LOSS:
        return _kept("learning_rate", current, f"the rule was measured with {MEASURED_LOSS} only")
    if many := _many_pairs(stats):
        return _kept("learning_rate", current, many)
    shape = "pair data" if stats.pairs else f"clusters of a median {stats.texts_per_label['median']:g} texts"
    return Choice(
        "learning_rate",
        TUNED_LEARNING_RATE,
        current["learning_rate"],
        f"{shape}: {TUNED_LEARNING_RATE:g} gained more than {current['learning_rate']:g} with {MEASURED_LOSS} on "
        "pairs (WikiAnswers) and on clusters (Banking77) held out of their train splits (bench/RESULTS.md, issue 13)",
    )


def _probe(stats: DataStatistics, current: Mapping[str, Any], given: Collection[str]) -> Choice:
    default = bool(current.get("probe", False))
    if not stats.pairs:
        why = f"clusters: {MEASURED_LOSS} at {TUNED_LEARNING_RATE:g} gained most on Banking77 held out of train"
        return Choice("probe", default, default, f"config.yml's; {why}")
    if stats.texts < SMALL_DATA_TEXTS:
        why = (
            f"small data ({stats.texts} texts < {SMALL_DATA_TEXTS}): its slice would be smaller, easier and read "
            "higher than the 1,000-label slices the probe's line was measured on"
        )
        return Choice("probe", default, default, f"config.yml's; {why}")
    named = [option for option in PROBED if option in given]
    if named:
        return Choice("probe", default, default, f"config.yml's; the run sets {', '.join(named)}")
    if current.get("loss") != MEASURED_LOSS:
        return _kept("probe", current, f"the gentle recipe was measured against {MEASURED_LOSS} only")
    return Choice(
        "probe",
        True,
        default,
        "pair data: where the starting model already ranks held-out pairs first (Quora) the default lost 0.002 "
        "average precision held out of train and NTXentLoss at 2e-5 gained; where it has room (WikiAnswers) the "
        "default gained most; the statistics do not tell the two apart, the starting model's precision on held-out "
        "training labels does (bench/RESULTS.md, issue 13)",
    )


def _epochs(stats: DataStatistics, default: int) -> Choice:
    budget = f"a budget of {SAMPLE_BUDGET:,} training samples (texts x epochs)"
    if stats.pairs:
        why = "pair data: 10 epochs instead of 3 gained +0.002 average precision on WikiAnswers, at 3.3x the time"
        return Choice("epochs", default, default, f"config.yml's; {why} (bench/RESULTS.md, issue 13)")
    if stats.texts * default >= SAMPLE_BUDGET:
        return Choice("epochs", default, default, f"config.yml's; {stats.texts} texts fill {budget}")
    value = max(default, min(MAX_EPOCHS, round(SAMPLE_BUDGET / stats.texts)))
    return Choice(
        "epochs",
        value,
        default,
        f"small data: {stats.texts} texts in clusters, as many epochs as {budget} allows, at most {MAX_EPOCHS}; "
        "on texts held out of Banking77 10 epochs gained +0.127 average precision, 3 epochs +0.067 "
        "(bench/RESULTS.md, issue 13)",
    )


def _val_split(stats: DataStatistics, default: float, evaluated: bool) -> Choice:
    if evaluated or default > 0:
        why = "the run has evaluation data" if evaluated else "config.yml's"
        return Choice("val_split", default, default, why)
    if stats.texts >= SMALL_DATA_TEXTS:
        return Choice("val_split", default, default, f"{stats.texts} texts: not small data (< {SMALL_DATA_TEXTS})")
    if stats.labels_with_pairs < AUTO_VAL_MIN_LABELS:
        why = f"only {stats.labels_with_pairs} labels have pairs (< {AUTO_VAL_MIN_LABELS}): too few to hold some out"
        return Choice("val_split", default, default, why)
    share = round(max(AUTO_VAL_SPLIT, 2 / stats.labels), 4)  # at least two labels, so val_loss has negatives
    return Choice(
        "val_split",
        share,
        default,
        f"small data ({stats.texts} texts < {SMALL_DATA_TEXTS}) without evaluation data: whole labels held out "
        "for val_loss, so a run worse than the starting model is not published",
    )
