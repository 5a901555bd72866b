"""Data-aware defaults at a run's start: measure the training data, choose what the user left open.

The choice itself is the pure :func:`tunerflow.training.data_defaults.choose`; this
module measures the data (label counts, token lengths of a seeded sample, with
the run's tokenizer) and turns the choices into the run's recipe. The choices are
made once, when the run is created, and kept in its record, so a resumed run
trains with the same values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunerflow.artifact.open import load_tokenizer
from tunerflow.data.store import Dataset, DatasetStore
from tunerflow.errors import DataError
from tunerflow.inference.batching import tokenize
from tunerflow.modeling.sources import ModelSource
from tunerflow.training.data_defaults import Choice, DataStatistics, choose, data_statistics
from tunerflow.training.recipe import MODEL_OPTIONS, Recipe

LENGTH_SAMPLE = 10_000  # texts tokenised for the length percentiles (~0.6 s at ~17,000 texts/s)


def given_options(options: dict[str, Any]) -> set[str]:
    """The options a run set itself (not None); max_length also when model_options sets it."""
    given = {key for key, value in options.items() if value is not None}
    named = options.get("model_options") or {}
    given |= {MODEL_OPTIONS[key] for key in named if key in MODEL_OPTIONS}
    return given


def measure(dataset: Dataset, tokenizer: object, model_max_length: int, seed: int) -> DataStatistics:
    """Statistics of ``dataset``; token lengths from up to :data:`LENGTH_SAMPLE` texts drawn with ``seed``."""
    count = len(dataset)
    positions = np.arange(count)
    if count > LENGTH_SAMPLE:
        positions = np.sort(np.random.default_rng([seed, 13]).choice(count, LENGTH_SAMPLE, replace=False))
    texts = [record.text for record in dataset.read(positions)]
    lengths = [len(ids) for ids in tokenize(tokenizer, texts, model_max_length)]
    return data_statistics(dataset.label_counts(), np.asarray(lengths))


def data_aware_recipe(
    recipe: Recipe,
    options: dict[str, Any],
    defaults: dict[str, Any],
    datasets: DatasetStore,
    source: ModelSource,
    check: Any,
) -> tuple[Recipe, list[Choice], DataStatistics]:
    """``recipe`` with the data-aware choices for the options not in ``options``, the choices and the statistics.

    ``check(recipe)`` refuses a recipe (raises DataError) the data cannot train; a validation slice it
    refuses is not held out, and its choice says so.
    """
    tokenizer, model_max = load_tokenizer(source)
    stats = measure(datasets.get(recipe.train_data), tokenizer, model_max, recipe.seed)
    evaluated = bool(recipe.eval_query_data or recipe.eval_data)
    choices = choose(stats, recipe.to_dict(), given_options(options), evaluated=evaluated, model_max_length=model_max)
    chosen = Recipe.from_options(defaults, {**options, **{c.option: c.value for c in choices if c.changed}})
    split = next((c for c in choices if c.option == "val_split" and c.changed), None)
    if split is not None:
        try:
            check(chosen)
        except DataError as error:
            kept = Choice("val_split", split.default, split.default, f"no validation slice: {error}")
            choices = [kept if c is split else c for c in choices]
            chosen = Recipe.from_options(defaults, {**options, **{c.option: c.value for c in choices if c.changed}})
    return chosen, choices, stats
