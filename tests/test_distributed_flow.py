"""A ``devices: 2`` run through ``flows/train.yml`` and the client ends like a one-device run.

The same data and options, once with one process and once with two (torchrun, gloo on the CPU), both started
with ``tunerflow.fit`` against the Flow: same status and details, the same kinds of log lines (the launch line
aside), the same metric names and epochs, and artifacts of the same shape, downloaded and loaded back.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from tests.test_distributed_executor import _log_shape
from tests.training_helpers import toy_options, toy_records

jina = pytest.importorskip("jina")


@pytest.fixture
def flow(tmp_path, tiny_model_dir):
    from tests.flows import train_flow_process

    with train_flow_process(tmp_path, tiny_model_dir) as process:
        yield process


def test_two_devices_through_the_flow_and_the_client(flow, tiny_model_dir, tmp_path):
    import tunerflow
    from tunerflow import EvaluationCallback

    options = toy_options(tiny_model_dir, epochs=2, to_onnx=True)
    for key in ("train_data", "eval_query_data", "eval_index_data", "model"):
        options.pop(key)
    train = [(r.text, r.label) for r in toy_records(240, 1, "t")]
    evaluation = EvaluationCallback(
        query_data=[(r.text, r.label) for r in toy_records(24, 2, "q")],
        index_data=[(r.text, r.label) for r in toy_records(96, 3, "i")],
    )
    ended = {}
    for devices in (1, 2):
        run = tunerflow.fit(
            model=str(tiny_model_dir),
            train_data=train,
            callbacks=[evaluation],
            run_name=f"d{devices}",
            devices=devices,
            host=flow.grpc_host,
            **options,
        )
        lines = list(run.stream_logs(interval=0.2))
        archive = run.save_artifact(tmp_path / f"download-{devices}")
        ended[devices] = (run.status(), run.logs(), run.metrics(), archive, lines)

    (one, one_log, one_metrics, one_zip, _), (two, two_log, two_metrics, two_zip, two_lines) = ended[1], ended[2]
    assert one["status"] == two["status"] == "FINISHED", (two["details"], two_log[-2000:])
    assert two["details"] == one["details"]
    assert two["progress"].keys() == one["progress"].keys() and two["progress"]["step"] == one["progress"]["step"]
    assert any("epoch 2/2" in line for line in two_lines)
    assert [w for w in _log_shape(two_log) if w not in _log_shape(one_log)] == ["INFO launching N"]
    assert two_metrics.keys() == one_metrics.keys() and two_metrics["after"].keys() == one_metrics["after"].keys()
    assert [e["epoch"] for e in two_metrics["epochs"]] == [e["epoch"] for e in one_metrics["epochs"]] == [1, 2]
    names = {
        devices: sorted(os.path.basename(n) for n in zipfile.ZipFile(path).namelist())
        for devices, path in ((1, one_zip), (2, two_zip))
    }
    assert names[2] == names[1] and "model.onnx" in names[2]
    vectors = {
        d: tunerflow.encode(tunerflow.get_model(path, is_onnx=True), ["how do cats eat"])
        for d, path in ((1, one_zip), (2, two_zip))
    }
    assert vectors[2].shape == vectors[1].shape and np.isfinite(vectors[2]).all()
