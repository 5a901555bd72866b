"""What each lower-precision path loses against fp32, measured when a run's artifact is published.

``backend: auto`` serves bf16 or int8 only where the artifact records a check of it that qualifies
(:mod:`tunerflow.inference.auto`). Each path is measured as it serves, through its own backend with the
default batching, against fp32 torch on the same texts:

* with an evaluation set (``eval_query_data``): MRR (``model_reciprocal_rank``, with the run's limit,
  distance and exclude_self) on at most :data:`MAX_QUERIES` queries and :data:`MAX_INDEX` index texts
  drawn with a fixed seed; it qualifies with a drop of at most 0.001 for bf16 and 0.005 for int8;
* without one, a proxy: the mean cosine to fp32 on up to :data:`PROBE_TEXTS` training texts, at least
  0.999 for bf16 and 0.99 for int8. The record's ``metric`` says which rule applied.

The paths: ``torch/bfloat16`` where the CPU computes bf16 natively (elsewhere it would be emulated at
~50 texts/s, and auto never serves bf16 on such a CPU; a GPU then serves float32); ``onnx-int8`` with
an int8 graph; with OpenVINO installed,
``openvino-int8`` (the same graph, run by OpenVINO's own int8 kernels: its quality differs from
ONNX Runtime's, so it is measured, not borrowed) and, on a CPU with native bf16 only (OpenVINO refuses
bf16 elsewhere), ``openvino/bfloat16`` (OpenVINO rounds more operations to bf16 than torch's autocast:
measured on its own too). A path not measured has no record, and auto does not serve it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tunerflow.artifact.save import PrecisionChecker
from tunerflow.data.store import Dataset
from tunerflow.errors import ConfigError
from tunerflow.evaluation import EvaluationSet, evaluate, metric_key
from tunerflow.format import Architecture, ArtifactConfig, PrecisionCheck, precision_path
from tunerflow.inference.base import InferenceBackend
from tunerflow.inference.cpu import cpu_features
from tunerflow.inference.factory import ModelFiles, open_graph
from tunerflow.inference.openvino_backend import openvino_installed
from tunerflow.inference.torch_backend import TorchBackend
from tunerflow.modeling.loading import LoadedModel
from tunerflow.options import Backend, Distance, DType
from tunerflow.training.recipe import Recipe

MRR = metric_key("reciprocal_rank")
COSINE = "cosine_to_fp32_mean"
# The largest drop below fp32 that qualifies, by metric and by kind of precision (issue 14).
BOUNDS = {MRR: {"bf16": 0.001, "int8": 0.005}, COSINE: {"bf16": 0.001, "int8": 0.01}}
MAX_QUERIES = 500  # bf16 emulated on a CPU without it embeds ~50 texts/s (bench/RESULTS.md): keep it bounded
MAX_INDEX = 2000
PROBE_TEXTS = 256
SAMPLE_SEED = 0  # a fixed seed: the same artifact gets the same sample, whatever the run's seed
# The lower-precision paths, in the order they are measured.
PATHS = (
    (Backend.TORCH, DType.BFLOAT16),
    (Backend.ONNX_INT8, DType.FLOAT32),
    (Backend.OPENVINO_INT8, DType.FLOAT32),
    (Backend.OPENVINO, DType.BFLOAT16),
)

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class QualityProbe:
    """The texts the paths are compared on, and how retrieval is scored.

    Attributes:
        evaluation: the evaluation set (subsampled); None: compare by cosine to fp32 on ``texts``.
        texts: the probe texts of the cosine proxy.
        limit, exclude_self, distance: the run's evaluation settings.
    """

    evaluation: EvaluationSet | None
    texts: list[str]
    limit: int = 20
    exclude_self: bool = True
    distance: str | Distance = Distance.COSINE

    @property
    def metric(self) -> str:
        return MRR if self.evaluation is not None else COSINE

    @property
    def size(self) -> int:
        """The texts each path embeds."""
        if self.evaluation is None:
            return len(self.texts)
        return len(self.evaluation.query_texts) + len(self.evaluation.index_texts or ())


def quality_probe(recipe: Recipe, evaluation: EvaluationSet | None, train: Dataset) -> QualityProbe:
    """The probe of a run: its evaluation set subsampled, else probe texts from its training data."""
    if evaluation is not None:
        sample = subsample(evaluation)
        return QualityProbe(sample, [], recipe.eval_limit, recipe.eval_exclude_self, recipe.eval_distance)
    return QualityProbe(None, probe_texts(train))


def subsample(data: EvaluationSet, max_queries: int = MAX_QUERIES, max_index: int = MAX_INDEX) -> EvaluationSet:
    """At most ``max_queries`` queries and ``max_index`` index texts of ``data``, drawn with a fixed seed.

    Queries that are their own index become an index of up to ``max_index`` of them, with up to
    ``max_queries`` of those as queries (``exclude_self`` still drops each query's own text).
    """
    rng = np.random.default_rng(SAMPLE_SEED)
    query_fields = (data.query_ids, data.query_texts, data.query_labels)
    if data.has_index:
        queries = _pick(len(data.query_ids), max_queries, rng)
        index = _pick(len(data.index_ids), max_index, rng)
        index_fields = (data.index_ids, data.index_texts, data.index_labels)
        return EvaluationSet(*_take(query_fields, queries), *_take(index_fields, index))
    pool = _pick(len(data.query_ids), max_index, rng)
    queries = pool[_pick(len(pool), max_queries, rng)]
    return EvaluationSet(*_take(query_fields, queries), *_take(query_fields, pool))


def probe_texts(train: Dataset, count: int = PROBE_TEXTS) -> list[str]:
    """Up to ``count`` texts spread evenly over ``train``."""
    positions = np.unique(np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(int))
    return [record.text for record in train.read(positions)]


def precision_checker(
    probe: QualityProbe, log: logging.Logger, guard: Callable[[Embed], Embed] = lambda embed: embed
) -> PrecisionChecker:
    """What :func:`tunerflow.export.save_artifact` calls to measure and record the checks.

    Args:
        probe: the texts and scoring of the comparison.
        log: where one line per check goes (the run's log).
        guard: wraps every embedding function (the run's cancel checks).
    """

    def check(loaded: LoadedModel, staging, config: ArtifactConfig) -> dict[str, PrecisionCheck]:
        fp32, score = _scorer(probe, guard(TorchBackend(loaded).embed))
        checks = {}
        for backend, dtype in PATHS:
            path = precision_path(backend, dtype)
            opened = _open(loaded, staging, config, backend, dtype, log)
            if opened is not None:
                checks[path] = _record(probe.metric, backend, fp32, score(guard(opened.embed)), probe.size)
                _log(log, path, checks[path])
        return checks

    return check


def _scorer(probe: QualityProbe, fp32_embed: Embed) -> tuple[float, Callable[[Embed], float]]:
    """fp32's value of the probe's metric, and the function that scores another path the same way."""
    if probe.evaluation is not None:

        def mrr(embed: Embed) -> float:
            options = dict(limit=probe.limit, exclude_self=probe.exclude_self, distance=probe.distance)
            return float(evaluate(embed, probe.evaluation, **options)[MRR])

        return mrr(fp32_embed), mrr
    reference = _unit(fp32_embed(probe.texts))

    def cosine(embed: Embed) -> float:
        return float((_unit(embed(probe.texts)) * reference).sum(axis=1).mean())

    return 1.0, cosine


def _open(
    loaded: LoadedModel, staging, config: ArtifactConfig, backend: Backend, dtype: DType, log: logging.Logger
) -> InferenceBackend | None:
    """The path's backend on the staged files, or None where it cannot be measured here."""
    if backend is Backend.TORCH:
        if dtype is DType.BFLOAT16 and not cpu_features().bf16:
            return None  # emulated: ~50 texts/s, and auto serves bf16 on a CPU only where it is native
        return TorchBackend(loaded, dtype=dtype)
    if config.onnx_file(backend.int8) is None:
        return None
    openvino = backend in (Backend.OPENVINO, Backend.OPENVINO_INT8)
    if openvino and (not openvino_installed() or (dtype is DType.BFLOAT16 and not cpu_features().bf16)):
        return None
    files = ModelFiles("published", staging, loaded.spec, Architecture.read(staging), config)
    try:
        return open_graph(files, loaded.spec, backend, dtype, tokenizer=loaded.tokenizer)
    except ConfigError as error:  # OpenVINO cannot compile this graph: no record, auto will not serve it
        log.warning("precision check %s: not measured: %s", precision_path(backend, dtype), error)
        return None


def _record(metric: str, backend: Backend, fp32: float, value: float, texts: int) -> PrecisionCheck:
    bound = BOUNDS[metric]["int8" if backend.int8 else "bf16"]
    return PrecisionCheck(metric, fp32, value, value - fp32, texts, bound, qualifies=value >= fp32 - bound)


def _log(log: logging.Logger, path: str, check: PrecisionCheck) -> None:
    log.info(
        "precision check %s: %s %.5f against fp32 %.5f (delta %+.5f, bound %g) on %d texts: %s",
        path,
        check.metric,
        check.value,
        check.fp32,
        check.delta,
        check.bound,
        check.texts,
        "qualifies" if check.qualifies else "does not qualify",
    )


def _pick(count: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions: all of ``range(count)``, or ``limit`` of them drawn without replacement."""
    if count <= limit:
        return np.arange(count)
    return np.sort(rng.choice(count, size=limit, replace=False))


def _take(fields: tuple[list, ...], positions: np.ndarray) -> list[list]:
    return [[values[int(p)] for p in positions] for values in fields]


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
