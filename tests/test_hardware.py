"""``precision: auto``: bf16 on a CPU with AMX bf16 tiles, float32 elsewhere; chosen once, recorded, logged."""

from __future__ import annotations

import pytest
import torch

import tunerflow.runs.execute as execute
from tests.training_helpers import toy_manager, toy_options
from tunerflow.errors import ConfigError
from tunerflow.inference.cpu import CpuFeatures
from tunerflow.training.hardware import choose_precision

AMX_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"})
AMX = CpuFeatures(AMX_FLAGS, "AVX512", "Xeon", "GenuineIntel")
ZEN4 = CpuFeatures(frozenset({"avx2", "avx512f", "avx512_bf16"}), "AVX512", "EPYC", "AuthenticAMD")
AVX2 = CpuFeatures(frozenset({"avx2"}), "AVX2", "EPYC", "AuthenticAMD")
CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


def test_auto_is_bf16_only_on_a_cpu_with_amx_tiles():
    assert choose_precision("auto", AMX, CPU).value == "bf16"
    assert choose_precision("auto", ZEN4, CPU).value == "fp32"  # AVX512-BF16 alone: not measured training
    assert choose_precision("auto", AVX2, CPU).value == "fp32"
    assert choose_precision("auto", CpuFeatures(frozenset()), CPU).value == "fp32"  # flags unknown
    assert choose_precision("auto", AMX, GPU).value == "fp32"  # as the encoder's dtype auto: bf16 is explicit there
    chosen = choose_precision("auto", AMX, CPU)
    assert chosen.changed and chosen.default == "auto" and "AMX" in chosen.reason
    unusable = choose_precision("auto", AMX, CPU, amx_usable=False)  # the flag shows, PyTorch cannot use the tiles
    assert unusable.value == "fp32" and "cannot use them" in unusable.reason


@pytest.mark.parametrize("setting", ["fp32", "bf16", "fp16", "BF16"])
def test_an_explicit_precision_is_kept_on_any_machine(setting):
    for features in (AMX, AVX2):
        chosen = choose_precision(setting, features, CPU)
        assert chosen.value == setting.lower() and not chosen.changed
    with pytest.raises(ConfigError, match="unknown precision 'fp8'.*auto"):
        choose_precision("fp8", AMX, CPU)


@pytest.mark.parametrize(("features", "expected"), [(AMX, "bf16"), (AVX2, "fp32")])
def test_a_run_records_and_logs_the_precision_auto_chose(tmp_path, tiny_model_dir, monkeypatch, features, expected):
    monkeypatch.setattr(execute, "cpu_features", lambda: features)
    monkeypatch.setattr(execute, "torch_uses_amx", lambda: True)  # bf16 runs emulated where it cannot
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        record = manager.start(toy_options(tiny_model_dir, epochs=1, run_name="auto", precision="auto"))
        assert record.recipe["precision"] == expected  # a resumed run reads it from here: the same choice
        assert [(c["option"], c["value"], c["default"]) for c in record.hardware] == [("precision", expected, "auto")]
        record = manager.run_now("auto")
        assert record.status.value == "FINISHED", record.details
        assert f"this machine: precision {expected} (auto: " in manager.logs("auto")[0]
        given = manager.start(toy_options(tiny_model_dir, epochs=1, run_name="given", precision="fp32"))
        assert given.recipe["precision"] == "fp32" and given.hardware == []
    finally:
        manager.close()


def test_a_setup_built_without_the_manager_resolves_auto_too(tmp_path, tiny_model_dir, monkeypatch):
    from tests.training_helpers import toy_setup

    monkeypatch.setattr(execute, "cpu_features", lambda: AMX)
    monkeypatch.setattr(execute, "torch_uses_amx", lambda: True)
    manager = toy_manager(tmp_path / "home", start_worker=False)
    try:
        setup, _ = toy_setup(manager, tiny_model_dir, precision="auto")
        assert setup.recipe.precision.value == "bf16" and setup.autocast_dtype == torch.bfloat16
    finally:
        manager.close()


def test_a_record_with_keys_of_a_newer_tuner_still_loads(tmp_path):
    from tunerflow.runs.record import RunRecord

    record = RunRecord(run_name="r", recipe={"precision": "bf16"}, hardware=[{"option": "precision"}])
    data = {**record.to_dict(), "written_by_a_later_version": 1}
    assert RunRecord.from_dict(data) == record  # a rolled-back tuner reads what a newer one saved
    older = {key: value for key, value in record.to_dict().items() if key != "hardware"}
    assert RunRecord.from_dict(older).hardware == []  # and a newer one what an older one saved
