"""Every executor config.yml loads with jina (in a fresh interpreter, as `jina executor` would)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jina")

LOAD = """
import json, sys
from jina import Executor
executor = Executor.load_config(sys.argv[1], uses_with=json.loads(sys.argv[2]))
print(json.dumps({"class": type(executor).__name__, "info": executor.describe()}))
executor.close()
"""


def _load(config: str, uses_with: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(ROOT / config), json.dumps(uses_with)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_encoder_config_loads(tiny_model_dir):
    loaded = _load("executors/encoder/config.yml", {"model": str(tiny_model_dir), "dtype": "bfloat16"})
    assert loaded["class"] == "EncoderExecutor"
    assert loaded["info"]["backend"] == "torch" and loaded["info"]["dtype"] == "bfloat16"


def test_tuner_config_loads(tmp_path):
    loaded = _load("executors/tuner/config.yml", {"home": str(tmp_path / "home"), "recipe": {"epochs": 5}})
    assert loaded["class"] == "TunerExecutor"
    assert loaded["info"]["home"] == str(tmp_path / "home")
    assert loaded["info"]["default_recipe"]["epochs"] == 5  # the tuner's override of config.yml
    assert loaded["info"]["default_recipe"]["batch_size"] == 128  # the rest from config.yml


def test_flow_files_parse():
    import yaml

    for name in ("serve.yml", "train.yml"):
        flow = yaml.safe_load((ROOT / "flows" / name).read_text())
        for executor in flow["executors"]:
            assert (ROOT / "flows" / executor["uses"]).resolve().is_file()
