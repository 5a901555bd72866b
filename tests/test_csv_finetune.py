"""The reference CSV through flows/train.yml: the bundled MiniLM fine-tunes on CPU and is then served."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList

from tests.flows import KeyedClient, flow_from_yaml
from tunerflow.api import get_model
from tunerflow.data import read_csv
from tunerflow.evaluation import METRIC_NAMES
from tunerflow.serving.documents import LabeledText

jina = pytest.importorskip("jina")
CSV = Path(__file__).resolve().parents[1] / "data/examples/text-text_example.csv"


def _tuner(client, endpoint, parameters, docs=None):
    responses = client.post(
        endpoint,
        inputs=docs if docs is not None else DocList[LabeledText](),
        parameters=parameters,
        return_responses=True,
        target_executor="tuner$",
        request_size=500,
    )
    results = responses[-1].parameters["__results__"]
    return next(value for key, value in results.items() if key.startswith("tuner/"))


def test_bundled_model_finetunes_on_the_reference_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNERFLOW_HOME", str(tmp_path / "home"))
    records = list(read_csv(CSV))
    labels = sorted({r.label for r in records})
    held_out = set(labels[::5])  # a fifth of the labels, never trained on, evaluate retrieval
    train = [r for r in records if r.label not in held_out]
    evaluation = [r for r in records if r.label in held_out]

    def docs(rows):
        return DocList[LabeledText]([LabeledText(id=r.id, text=r.text, label=r.label) for r in rows])

    flow, grpc_port, _ = flow_from_yaml("train.yml", tmp_path, {"encoder": {"poll_interval": 0.5}})
    with flow:
        client = KeyedClient(grpc_port)
        assert _tuner(client, "/datasets/append", {"dataset": "csv-train"}, docs(train))["documents"] == len(train)
        _tuner(client, "/datasets/append", {"dataset": "csv-eval"}, docs(evaluation))
        _tuner(
            client,
            "/runs/start",
            {"train_data": "csv-train", "eval_query_data": "csv-eval", "epochs": 1, "run_name": "csv", "to_onnx": True},
        )
        deadline = time.monotonic() + 500
        while (status := _tuner(client, "/runs/status", {"run_name": "csv"}))["status"] not in ("FINISHED", "FAILED"):
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status["status"] == "FINISHED", status["details"]
        metrics = _tuner(client, "/runs/metrics", {"run_name": "csv"})
        assert set(metrics["before"]) == set(metrics["after"]) == {f"model_{name}" for name in METRIC_NAMES}
        assert metrics["after"]["model_average_precision"] > 0.5

        artifact = str(tmp_path / "home/artifacts/csv")
        texts = ["How do I learn Python?", "What is the capital of India?"]
        deadline = time.monotonic() + 60
        while True:
            served = client.post("/encode", inputs=DocList[LabeledText]([LabeledText(text=t) for t in texts]))
            vectors = np.stack([d.embedding for d in served])
            info = client.post(
                "/info", inputs=DocList[LabeledText](), return_responses=True, target_executor="encoder$"
            )
            if next(iter(info[0].parameters["__results__"].values()))["model"] == artifact:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        served = client.post("/encode", inputs=DocList[LabeledText]([LabeledText(text=t) for t in texts]))
        vectors = np.stack([d.embedding for d in served])
    np.testing.assert_allclose(vectors, get_model(artifact).embed(texts), atol=1e-5)
    assert vectors.shape == (2, 384)
