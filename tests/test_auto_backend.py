"""``backend: auto``: the recorded rankings, the pure choice, the precision checks recorded at publication."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import TEXTS
from tests.training_helpers import toy_manager, toy_options
from tunerflow.api import get_model
from tunerflow.artifact import load_model, read_artifact_config
from tunerflow.errors import ConfigError
from tunerflow.evaluation import EvaluationSet
from tunerflow.export import save_artifact
from tunerflow.format import ArtifactConfig, Int8Info, ModelSpec, OnnxInfo, PrecisionCheck
from tunerflow.inference.auto import RANKINGS, Candidate, Runtime, choose_backend, cpu_kind, skip_reason
from tunerflow.inference.cpu import CpuFeatures, cpu_features
from tunerflow.inference.openvino_backend import openvino_installed
from tunerflow.options import Backend, DType, Pooling
from tunerflow.runs import precision

AVX2 = CpuFeatures(frozenset({"avx2"}))
AVX512 = CpuFeatures(frozenset({"avx2", "avx512f"}))
ZEN4 = CpuFeatures(frozenset({"avx2", "avx512f", "avx512_bf16"}))  # native bf16 without AMX
AMX = CpuFeatures(frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}))
SPEC = ModelSpec("tiny", Pooling.MEAN, True, 32, 32)
WITH_OPENVINO = Runtime(openvino=True)
WITHOUT_OPENVINO = Runtime(openvino=False)


def _check(qualifies: bool, drop: float = 0.0002) -> PrecisionCheck:
    return PrecisionCheck("model_reciprocal_rank", 0.9, 0.9 - drop, -drop, 120, 0.001, qualifies)


def _config(checks: dict | None = None, onnx: bool = True, int8: bool = True) -> ArtifactConfig:
    return ArtifactConfig(
        spec=SPEC,
        created_at="2026-12-03T00:00:00+00:00",
        versions={},
        onnx=OnnxInfo("model.onnx", 17, 1e-6, 1e-4) if onnx else None,
        onnx_int8=Int8Info("model.int8.onnx", "dynamic", 16, 0.998, 0.99) if int8 else None,
        files={"model.safetensors": {"size": 1, "sha256": "0"}},
        precision_checks=checks or {},
    )


ALL_PASS = {
    "torch/bfloat16": _check(True),
    "onnx-int8": _check(True),
    "openvino-int8": _check(True),
    "openvino/bfloat16": _check(True),
}


def test_cpu_kinds_from_flags():
    assert [cpu_kind(f) for f in (AMX, ZEN4, AVX512, AVX2)] == ["amx", "avx512", "avx512", "avx2"]
    assert cpu_kind(CpuFeatures(frozenset({"amx_bf16"}) | AVX512.flags)) == "avx512"  # both AMX flags needed
    assert cpu_kind(CpuFeatures(frozenset())) == "other"


@pytest.mark.parametrize("name", sorted(RANKINGS))
def test_every_ranking_holds_torch_float32_and_names_each_path_once(name):
    candidates = RANKINGS[name].candidates
    assert "torch/float32" in [c.path for c in candidates]  # it always runs: auto always finds a path
    assert len({c.path for c in candidates}) == len(candidates)


def test_the_avx2_ranking_is_its_measured_figures_fastest_first():
    ranking = RANKINGS["avx2"].candidates
    assert [c.path for c in ranking] == [
        "onnx-int8",
        "openvino/float32",
        "openvino-int8",
        "onnx",
        "torch/float32",
        "torch/bfloat16",
    ]
    ratios = [c.ratio for c in ranking]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] == 2.23 and ratios[-1] == 0.20
    assert all("bench/RESULTS.md" in c.source for c in ranking)


@pytest.mark.parametrize(
    "features, config, runtime, chosen",
    [
        (AVX2, _config(ALL_PASS), WITH_OPENVINO, "onnx-int8"),
        (AVX2, _config({**ALL_PASS, "onnx-int8": _check(False)}), WITH_OPENVINO, "openvino/float32"),
        (AVX2, _config({**ALL_PASS, "onnx-int8": _check(False)}), WITHOUT_OPENVINO, "onnx"),
        (AVX2, _config(ALL_PASS, int8=False), WITH_OPENVINO, "openvino/float32"),  # no int8 graph
        (AVX2, _config(ALL_PASS, onnx=False, int8=False), WITH_OPENVINO, "torch/float32"),
        (AVX2, _config({}), WITHOUT_OPENVINO, "onnx"),  # no record: int8 does not serve
        (AVX2, None, WITH_OPENVINO, "torch/float32"),  # a model directory: no graphs, no records
        (AVX512, _config(ALL_PASS), WITH_OPENVINO, "onnx-int8"),
        (AMX, _config(ALL_PASS), WITH_OPENVINO, "openvino/bfloat16"),
        (AMX, _config(ALL_PASS), WITHOUT_OPENVINO, "onnx-int8"),
        (AMX, _config({**ALL_PASS, "onnx-int8": _check(False)}), WITHOUT_OPENVINO, "torch/bfloat16"),
        (AMX, _config({"onnx-int8": _check(False)}), WITH_OPENVINO, "onnx"),  # bf16 and openvino-int8 unrecorded
        (AMX, _config({}), WITH_OPENVINO, "onnx"),
        (AMX, _config({"torch/bfloat16": _check(True)}, onnx=False, int8=False), WITHOUT_OPENVINO, "torch/bfloat16"),
        (AMX, _config(ALL_PASS), Runtime(device="cuda:0", openvino=True), "torch/bfloat16"),
        (AVX2, _config(ALL_PASS), Runtime(device="cuda", openvino=True), "torch/bfloat16"),  # the GPU's bf16
        (AVX2, _config({"onnx-int8": _check(True)}), Runtime(device="cuda", openvino=True), "torch/float32"),
    ],
)
def test_auto_takes_the_fastest_path_that_runs_and_qualifies(features, config, runtime, chosen):
    assert choose_backend(features, config, runtime).path == chosen


def test_each_faster_path_is_listed_with_why_it_was_skipped():
    config = _config({"onnx-int8": _check(False, drop=0.002)}, onnx=True, int8=True)
    choice = choose_backend(AMX, config, WITHOUT_OPENVINO)
    assert choice.to_dict()["chosen"] == "onnx" and (choice.backend, choice.dtype) == (Backend.ONNX, DType.FLOAT32)
    why = {skipped["path"]: skipped["skipped"] for skipped in choice.considered}
    assert list(why) == ["openvino/bfloat16", "onnx-int8", "torch/bfloat16"]
    assert why["onnx-int8"] == "model_reciprocal_rank 0.89800 against fp32 0.90000: drop beyond the bound 0.001"
    assert why["torch/bfloat16"].startswith("no precision check recorded")
    assert "OpenVINO is not installed" in why["openvino/bfloat16"]
    assert "1.45x sentence-transformers" in choice.reason and "Xeon with AMX" in choice.reason


def test_auto_skips_bf16_where_the_cpu_would_emulate_it():
    candidate = Candidate(Backend.TORCH, DType.BFLOAT16)
    config = _config({"torch/bfloat16": _check(True)})
    assert "no native bf16" in skip_reason(candidate, AVX512, config, WITHOUT_OPENVINO)
    assert skip_reason(candidate, ZEN4, config, WITHOUT_OPENVINO) is None
    assert skip_reason(candidate, AVX512, config, Runtime(device="cuda")) is None  # a GPU's bf16 is no CPU flag


def test_the_avx512_ranking_is_its_measured_figures_and_skips_bf16_without_native_bf16():
    ranking = RANKINGS["avx512"].candidates
    ratios = [c.ratio for c in ranking]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] == 2.94
    assert all("On AVX-512 without AMX" in c.source for c in ranking)
    config = _config(ALL_PASS)
    assert choose_backend(ZEN4, _config({**ALL_PASS, "onnx-int8": _check(False)}), WITH_OPENVINO).path == (
        "openvino/bfloat16"
    )
    choice = choose_backend(AVX512, _config({**ALL_PASS, "onnx-int8": _check(False)}), WITH_OPENVINO)
    assert choice.path == "openvino/float32" and (choice.cpu_kind, choice.ranking) == ("avx512", "avx512")
    assert [s["path"] for s in choice.considered] == ["onnx-int8", "openvino/bfloat16", "torch/bfloat16"]
    assert "stands in" not in choose_backend(ZEN4, config, WITH_OPENVINO).reason


def test_another_spec_than_the_artifacts_leaves_out_its_graphs_or_its_records():
    config = _config(ALL_PASS)
    other_pooling = Runtime(openvino=True, spec=replace(SPEC, pooling=Pooling.CLS))
    assert choose_backend(AVX2, config, other_pooling).path == "torch/float32"
    shorter = Runtime(openvino=True, spec=replace(SPEC, max_length=16))
    choice = choose_backend(AVX2, config, shorter)
    assert choice.path == "openvino/float32" and "own spec" in choice.considered[0]["skipped"]
    assert choose_backend(AVX2, config, Runtime(openvino=True, spec=SPEC)).path == "onnx-int8"


def test_the_choice_is_deterministic_for_recorded_figures():
    """The same recorded config gives the same choice, read back from tunerflow.json or not."""
    for features in (AMX, ZEN4, AVX512, AVX2):
        for checks in (ALL_PASS, {"onnx-int8": _check(False)}, {"torch/bfloat16": _check(True)}):
            config = _config(checks)
            reread = ArtifactConfig.from_dict(json.loads(json.dumps(config.to_dict())))
            first, *others = [choose_backend(features, c, WITH_OPENVINO) for c in (config, reread, config)]
            assert all(other == first for other in others)


def test_precision_checks_round_trip_and_old_configs_still_load():
    config = _config(ALL_PASS)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["precision_checks"]["onnx-int8"]["bound"] == 0.001
    assert ArtifactConfig.from_dict(data) == config
    del data["precision_checks"]  # an artifact written before the records existed
    old = ArtifactConfig.from_dict(data)
    assert old.precision_checks == {} and choose_backend(AVX2, old, WITHOUT_OPENVINO).path == "onnx"


@pytest.fixture(scope="module")
def recorded_artifact(tiny_model_dir, tmp_path_factory):
    """An artifact with both graphs whose int8 check qualifies, as a publication would record it."""
    loaded = load_model(tiny_model_dir, max_length=32)
    return save_artifact(
        loaded,
        tmp_path_factory.mktemp("auto") / "a",
        to_onnx=True,
        int8=True,
        probe_texts=TEXTS,
        check_precision=lambda loaded, staging, config: {"onnx-int8": _check(True)},
    )


def test_open_backend_auto_opens_the_chosen_path(recorded_artifact, tiny_model_dir, monkeypatch):
    import tunerflow.inference.factory as factory

    monkeypatch.setattr(factory, "cpu_features", lambda: AVX2)
    model = get_model(recorded_artifact, backend="auto")
    assert (model.name, model.auto.path, model.auto.cpu_kind) == ("onnx-int8", "onnx-int8", "avx2")
    np.testing.assert_allclose(model.embed(TEXTS), get_model(recorded_artifact, backend="onnx-int8").embed(TEXTS))
    plain = get_model(tiny_model_dir, backend="auto", dtype="auto")  # a model directory: torch, never an export
    assert (plain.name, plain.dtype, plain.auto.path) == ("torch", DType.FLOAT32, "torch/float32")
    assert get_model(recorded_artifact).auto is None  # a named backend has no choice to report


def test_auto_refuses_an_explicit_bfloat16(recorded_artifact):
    with pytest.raises(ConfigError, match="backend 'auto' chooses the precision itself.*backend torch with dtype"):
        get_model(recorded_artifact, backend="auto", dtype="bfloat16")


def test_the_bounds_are_bf16s_and_int8s():
    drop = 0.00125  # int8's Quora MRR drop (bench/RESULTS.md)
    int8 = precision._record(precision.MRR, Backend.ONNX_INT8, 0.98166, 0.98166 - drop, 100)
    bf16 = precision._record(precision.MRR, Backend.TORCH, 0.98166, 0.98166 - drop, 100)
    assert (int8.bound, int8.qualifies, bf16.bound, bf16.qualifies) == (0.005, True, 0.001, False)
    cosine = precision._record(precision.COSINE, Backend.ONNX_INT8, 1.0, 0.995, 16)
    assert (cosine.bound, cosine.qualifies) == (0.01, True)
    assert not precision._record(precision.COSINE, Backend.TORCH, 1.0, 0.9985, 16).qualifies


def test_subsample_is_bounded_deterministic_and_keeps_queries_in_their_own_pool():
    ids = [f"d{i}" for i in range(50)]
    data = EvaluationSet(ids, [f"text {i}" for i in range(50)], [str(i % 5) for i in range(50)])
    first, again = precision.subsample(data, 8, 20), precision.subsample(data, 8, 20)
    assert first == again and (len(first.query_ids), len(first.index_ids)) == (8, 20)
    assert set(first.query_ids) <= set(first.index_ids)
    assert all(f"text {i[1:]}" == t for i, t in zip(first.index_ids, first.index_texts, strict=True))
    indexed = EvaluationSet(ids[:10], ids[:10], ["a"] * 10, ids, ids, ["a"] * 50)
    kept = precision.subsample(indexed, 500, 20)
    assert kept.query_ids == ids[:10] and len(kept.index_ids) == 20


def _precision_checks(tmp_path, tiny_model_dir, **overrides) -> tuple[dict, dict]:
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        manager.start(toy_options(tiny_model_dir, epochs=1, run_name="r", int8=True, **overrides))
        record = manager.run_now("r")
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    _, config = read_artifact_config(tmp_path / "artifacts" / "r")
    return config.precision_checks, record.metrics


def test_publication_records_each_paths_mrr_against_fp32(tmp_path, tiny_model_dir):
    checks, metrics = _precision_checks(tmp_path, tiny_model_dir)
    expected = {"onnx-int8"} | ({"openvino-int8"} if openvino_installed() else set())
    expected |= {"torch/bfloat16"} if cpu_features().bf16 else set()  # not measured where it is emulated
    assert expected <= set(checks) <= expected | {"openvino/bfloat16"}
    for path, check in checks.items():
        assert (check.metric, check.texts) == ("model_reciprocal_rank", 24 + 96), path
        assert check.fp32 == pytest.approx(metrics["after"]["model_reciprocal_rank"], abs=1e-6)  # the run's own MRR
        assert check.qualifies == (check.value >= check.fp32 - check.bound)
    assert checks["onnx-int8"].bound == 0.005
    assert "torch/bfloat16" not in checks or checks["torch/bfloat16"].bound == 0.001


def test_publication_without_an_evaluation_set_records_the_cosine_proxy(tmp_path, tiny_model_dir):
    checks, _ = _precision_checks(tmp_path, tiny_model_dir, eval_query_data=None, eval_index_data=None)
    int8 = checks["onnx-int8"]
    assert (int8.metric, int8.fp32, int8.texts, int8.bound) == ("cosine_to_fp32_mean", 1.0, 240, 0.01)
    assert 0.9 < int8.value < 1.0  # measured: the int8 graph is not fp32 itself
    bf16 = checks.get("torch/bfloat16")
    assert (bf16 is not None) == cpu_features().bf16  # measured only where bf16 is native
    if bf16 is not None:
        assert (bf16.metric, bf16.fp32, bf16.texts, bf16.bound) == ("cosine_to_fp32_mean", 1.0, 240, 0.001)
        assert bf16.value < 1.0
