"""A ``devices: 2`` run through the TunerExecutor ends like a one-device run: status, logs, metrics, artifact."""

from __future__ import annotations

import re
import time

import pytest
from docarray import DocList

from tests.test_tuner_executor import _docs, _run, _wait
from tests.training_helpers import toy_options, toy_records
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.tuner_params import DatasetParameters, RunParameters

pytest.importorskip("jina")

from tunerflow_tuner import TunerExecutor  # noqa: E402  (tests/conftest.py puts it on sys.path)

NONE = DocList[LabeledText]()


def _log_shape(text: str) -> list[str]:
    """Each line's first words with numbers and names masked, repeats folded: what kinds of lines, in order."""
    shape = []
    for line in text.splitlines():
        words = re.sub(r"[\d.]+", "N", " ".join(line.split()[2:5])).replace("d2", "RUN").replace("d1", "RUN")
        if not shape or shape[-1] != words:
            shape.append(words)
    return shape


def test_two_devices_run_like_one_through_the_executor(tmp_path, tiny_model_dir):
    tuner = TunerExecutor(home=str(tmp_path / "home"))
    try:
        tuner.append(_docs(toy_records(240, 1, "t")), DatasetParameters(dataset="train"))
        tuner.append(_docs(toy_records(24, 2, "q")), DatasetParameters(dataset="queries"))
        tuner.append(_docs(toy_records(96, 3, "i")), DatasetParameters(dataset="index"))
        ended = {}
        for devices in (1, 2):
            name = f"d{devices}"
            options = toy_options(tiny_model_dir, epochs=2, run_name=name, devices=devices, to_onnx=True)
            tuner.start(NONE, RunParameters(**options))
            ended[devices] = (_wait(tuner, name), _run(tuner.logs(NONE, {"run_name": name}))["text"])
        (one, one_log), (two, two_log) = ended[1], ended[2]
        assert two["status"] == one["status"] == "FINISHED" and two["details"] == one["details"]
        assert two["progress"].keys() == one["progress"].keys() and two["progress"]["step"] == 20
        metrics = {d: _run(tuner.metrics(NONE, {"run_name": f"d{d}"})) for d in (1, 2)}
        assert metrics[2].keys() == metrics[1].keys()
        assert metrics[2]["after"].keys() == metrics[1]["after"].keys()
        assert [e["epoch"] for e in metrics[2]["epochs"]] == [1, 2]
        home = tmp_path / "home/artifacts"
        assert sorted(p.name for p in (home / "d2").iterdir()) == sorted(p.name for p in (home / "d1").iterdir())
        launched_lines = [w for w in _log_shape(two_log) if w not in _log_shape(one_log)]
        assert launched_lines == ["INFO launching N"], launched_lines  # the only kind of line added
        assert (home / "LATEST").read_text().strip() == "d2"

        tuner.start(NONE, RunParameters(**toy_options(tiny_model_dir, epochs=1000, run_name="long", devices=2)))
        deadline = time.monotonic() + 120
        while "step" not in _run(tuner.status(NONE, {"run_name": "long"})).get("progress", {}):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        _run(tuner.cancel(NONE, {"run_name": "long"}))
        cancelled = _wait(tuner, "long")
        assert cancelled["status"] == "CANCELLED", cancelled["details"]
    finally:
        tuner.close()
