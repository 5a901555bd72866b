"""TunerExecutor called directly: data in, refusals, runs, logs, metrics, artifact download, cancel."""

from __future__ import annotations

import base64
import hashlib
import io
import time
import zipfile

import numpy as np
import pytest
from docarray import DocList

from tests.training_helpers import toy_options, toy_records
from tunerflow.errors import ConfigError, ConflictError, DataError, NotFoundError
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.tuner_params import DatasetParameters, RunParameters

pytest.importorskip("jina")

from tunerflow_tuner import TunerExecutor  # noqa: E402  (tests/conftest.py puts it on sys.path)


def _docs(records, tag_label=False):
    docs = DocList[LabeledText]()
    for r in records:
        if tag_label:
            docs.append(LabeledText(id=r.id, text=r.text, tags={"finetuner_label": int(r.label)}))
        else:
            docs.append(LabeledText(id=r.id, text=r.text, label=r.label))
    return docs


def _run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


@pytest.fixture
def tuner(tmp_path):
    executor = TunerExecutor(home=str(tmp_path / "home"))
    executor.append(_docs(toy_records(240, 1, "t")), DatasetParameters(dataset="train"))
    executor.append(_docs(toy_records(24, 2, "q"), tag_label=True), DatasetParameters(dataset="queries"))
    executor.append(_docs(toy_records(96, 3, "i")), DatasetParameters(dataset="index"))
    yield executor
    executor.close()


def test_append_counts_and_tag_labels(tuner):
    listing = _run(tuner.datasets(DocList[LabeledText]()))["datasets"]
    assert {d["dataset"]: (d["documents"], d["labels"]) for d in listing} == {
        "train": (240, 12),
        "queries": (24, 12),
        "index": (96, 12),
    }
    answer = tuner.append(_docs(toy_records(12, 9, "x")), DatasetParameters(dataset="train"))
    assert answer["documents"] == 252 and answer["labels_with_pairs"] == 12


def test_bad_documents_store_nothing(tuner):
    docs = _docs(toy_records(5, 4, "b"))
    docs.append(LabeledText(id="no-label", text="words"))
    with pytest.raises(DataError, match="document 5 \\(id no-label\\) has no label"):
        tuner.append(docs, DatasetParameters(dataset="train"))
    docs[5] = LabeledText(id="no-text", label="3")
    with pytest.raises(DataError, match="no-text.*has no text"):
        tuner.append(docs, DatasetParameters(dataset="train"))
    with pytest.raises(DataError, match="empty request"):
        tuner.append(DocList[LabeledText](), DatasetParameters(dataset="train"))
    assert len(tuner.manager.datasets.get("train")) == 240


def _wait(tuner, name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _run(tuner.status(DocList[LabeledText](), {"run_name": name}))
        if status["status"] in ("FINISHED", "FAILED", "CANCELLED"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {name} did not end")


def test_run_lifecycle_and_artifact_download(tuner, tiny_model_dir, tmp_path):
    options = RunParameters(**toy_options(tiny_model_dir, epochs=2, run_name="r1", to_onnx=True))
    created = tuner.start(DocList[LabeledText](), options)
    assert created["status"] == "CREATED" and created["run_name"] == "r1"
    with pytest.raises(ConflictError, match="already exists"):
        tuner.start(DocList[LabeledText](), options)
    status = _wait(tuner, "r1")
    assert status["status"] == "FINISHED", status["details"]

    logs = _run(tuner.logs(DocList[LabeledText](), {"run_name": "r1"}))
    assert "epoch 2/2 step" in logs["text"] and "docs/s" in logs["text"] and "eta" in logs["text"]
    tail = _run(tuner.logs(DocList[LabeledText](), {"run_name": "r1", "offset": logs["next_offset"] - 10}))
    assert tail["text"] == logs["text"][-10:]

    metrics = _run(tuner.metrics(DocList[LabeledText](), {"run_name": "r1"}))
    assert len(metrics["before"]) == len(metrics["after"]) == 9
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]

    data, offset = b"", 0
    while True:
        chunk = _run(tuner.artifact(DocList[LabeledText](), {"run_name": "r1", "offset": offset, "size": 50_000}))
        data += base64.b64decode(chunk["data"])
        offset = chunk["next_offset"]
        if offset >= chunk["total"]:
            break
    assert hashlib.sha256(data).hexdigest() == chunk["sha256"]
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {"tunerflow.json", "run.json", "model.safetensors", "model.onnx", "training.png"} <= set(names)

    runs = _run(tuner.runs(DocList[LabeledText](), {}))["runs"]
    assert [(r["run_name"], r["status"]) for r in runs] == [("r1", "FINISHED")]
    latest = (tmp_path / "home/artifacts/LATEST").read_text().strip()
    assert latest == "r1"


def test_second_run_is_queued_and_cancel_works(tuner, tiny_model_dir):
    first = tuner.start(
        DocList[LabeledText](), RunParameters(**toy_options(tiny_model_dir, epochs=40, run_name="long"))
    )
    second = tuner.start(DocList[LabeledText](), RunParameters(**toy_options(tiny_model_dir, run_name="next")))
    assert first["status"] == "CREATED" and "queued behind long" in second["details"]
    cancelled = _run(tuner.cancel(DocList[LabeledText](), {"run_name": "next"}))
    assert cancelled["status"] == "CANCELLED"
    deadline = time.monotonic() + 60
    while _run(tuner.status(DocList[LabeledText](), {"run_name": "long"}))["status"] != "STARTED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _run(tuner.cancel(DocList[LabeledText](), {"run_name": "long"}))
    assert _wait(tuner, "long")["status"] == "CANCELLED"
    with pytest.raises(ConflictError, match="has no artifact"):
        _run(tuner.artifact(DocList[LabeledText](), {"run_name": "long"}))


def test_unknown_run_names_list_the_known_ones(tuner):
    with pytest.raises(NotFoundError, match="no run named 'ghost'"):
        _run(tuner.status(DocList[LabeledText](), {"run_name": "ghost"}))


def test_parameters_refuse_fractions_and_unknown_keys():
    from pydantic import ValidationError

    assert RunParameters(train_data="t", epochs=3.0).epochs == 3
    with pytest.raises(ValidationError, match="whole number"):
        RunParameters(train_data="t", epochs=2.5)
    with pytest.raises(ValidationError, match="extra fields"):
        RunParameters(train_data="t", epoch=2)
    assert "__results__" not in RunParameters(train_data="t", __results__={}).dict()
    assert np.isclose(RunParameters(train_data="t", learning_rate=1e-5).learning_rate, 1e-5)


def test_recipe_override_applies_and_unknown_keys_are_refused(tmp_path):
    executor = TunerExecutor(home=str(tmp_path / "a"), recipe={"epochs": 7})
    try:
        assert executor.manager.defaults["epochs"] == 7
        assert executor.manager.defaults["batch_size"] == 128  # the rest still from config.yml
    finally:
        executor.close()
    with pytest.raises(ConfigError, match="epoch.*valid:"):
        TunerExecutor(home=str(tmp_path / "b"), recipe={"epoch": 7})


def test_promote_rollback_and_served_endpoints(tuner, tiny_model_dir):
    from pydantic import ValidationError

    from tunerflow.errors import ArtifactError

    for name in ("m1", "m2"):
        options = RunParameters(**toy_options(tiny_model_dir, epochs=1, run_name=name, publish="manual"))
        tuner.start(DocList[LabeledText](), options)
        status = _wait(tuner, name)
        assert status["status"] == "FINISHED" and status["promoted"] is False and "manual" in status["details"]
    assert _run(tuner.served(DocList[LabeledText](), {}))["served"] is None
    with pytest.raises(ArtifactError, match="nothing is served"):
        _run(tuner.rollback(DocList[LabeledText](), {}))
    for name in ("m1", "m2"):
        answer = _run(tuner.promote(DocList[LabeledText](), {"run_name": name}))
        assert answer["served"] == name and answer["changed"]
    runs = _run(tuner.runs(DocList[LabeledText](), {}))["runs"]
    assert [(r["run_name"], r["promoted"]) for r in runs] == [("m2", True), ("m1", True)]  # newest first
    answer = _run(tuner.rollback(DocList[LabeledText](), {}))
    assert answer["served"] == "m1" and [e["action"] for e in answer["history"]] == ["promote", "promote", "rollback"]
    assert _run(tuner.served(DocList[LabeledText](), {}))["history"] == answer["history"]
    with pytest.raises(ValidationError):
        _run(tuner.rollback(DocList[LabeledText](), {"run_name": "m2"}))
    with pytest.raises(NotFoundError, match="no run named"):
        _run(tuner.promote(DocList[LabeledText](), {"run_name": "ghost"}))
