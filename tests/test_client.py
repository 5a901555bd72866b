"""The Finetuner-style client and the CLI against flows/train.yml on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from docarray import DocList

from tests.training_helpers import toy_options, toy_records
from tunerflow.errors import ConfigError, DataError

jina = pytest.importorskip("jina")


@pytest.fixture(scope="module")
def flow(tmp_path_factory, tiny_model_dir):
    from tests.flows import train_flow_process

    with train_flow_process(tmp_path_factory.mktemp("client-home"), tiny_model_dir) as process:
        yield process


def _options(tiny_model_dir, **overrides):
    options = toy_options(tiny_model_dir, epochs=2, **overrides)
    for key in ("train_data", "eval_query_data", "eval_index_data", "model"):
        options.pop(key)
    return options


def test_fit_in_the_reference_tools_words(flow, tiny_model_dir, tmp_path):
    import tunerflow
    from tunerflow import EvaluationCallback
    from tunerflow.serving.documents import LabeledText

    queries = DocList[LabeledText](
        [LabeledText(id=r.id, text=r.text, tags={"finetuner_label": r.label}) for r in toy_records(24, 2, "q")]
    )
    index_file = tmp_path / "index.csv"
    index_file.write_text("".join(f'"{r.text}",{r.label}\n' for r in toy_records(96, 3, "i")))
    run = tunerflow.fit(
        model=str(tiny_model_dir),
        train_data=[(r.text, r.label) for r in toy_records(240, 1, "t")],
        callbacks=[EvaluationCallback(query_data=queries, index_data=str(index_file))],
        run_name="client-run",
        description="from the client test",
        to_onnx=True,
        host=flow.grpc_host,
        chunk_size=50,
        **_options(tiny_model_dir),
    )
    assert run.name == "client-run"
    assert run.status()["status"] in ("CREATED", "STARTED", "FINISHED")
    lines = list(run.stream_logs(interval=0.2))
    assert any("epoch 2/2" in line for line in lines)
    assert run.status()["status"] == "FINISHED"
    assert run.logs().count("\n") >= len(lines) - 1
    metrics = run.metrics()
    assert len(metrics["before"]) == 9 and len(metrics["after"]) == 9
    archive = run.save_artifact(tmp_path / "download")
    assert archive.name == "client-run.zip" and "model.onnx" in zipfile.ZipFile(archive).namelist()
    model = tunerflow.get_model(archive, is_onnx=True)
    again = tunerflow.get_run("client-run", host=flow.grpc_host)
    assert again.record()["description"] == "from the client test"
    vectors = tunerflow.encode(model, ["how do cats eat"])
    assert vectors.shape == (1, 32) and np.isfinite(vectors).all()


def test_client_refusals(flow, tiny_model_dir):
    import tunerflow
    from tunerflow.client.connection import Connection, RemoteError

    with pytest.raises(DataError, match="item 1 has no label"):
        tunerflow.fit(train_data=[("a", 1), ("b", None)], host=flow.grpc_host)
    with pytest.raises(ConfigError, match="learning_rate must be > 0"):  # refused before the upload ...
        tunerflow.fit(train_data=[("a", 1), ("b", 1), ("c", 2), ("d", 2)], learning_rate=-1, host=flow.grpc_host)
    with pytest.raises(RemoteError, match="learning_rate must be > 0, got -1"):  # ... as the tuner refuses it
        Connection(flow.grpc_host).call("/runs/start", {"train_data": "t", "learning_rate": -1})
    with pytest.raises(ConfigError, match="unknown scheduler 'nope'"):
        tunerflow.fit(train_data=[("a", 1)], scheduler="nope", run_name="badvalue", host=flow.grpc_host)
    with pytest.raises(Exception, match="extra fields not permitted"):
        tunerflow.fit(train_data=[("a", 1)], lernrate=0.1, run_name="typo", host=flow.grpc_host)
    stored = Connection(flow.grpc_host).call("/datasets/list")["datasets"]
    assert {"typo-train", "badvalue-train"}.isdisjoint(d["dataset"] for d in stored)  # nothing was uploaded
    with pytest.raises(RemoteError, match="no run named 'ghost'"):
        tunerflow.get_run("ghost", host=flow.grpc_host)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tunerflow.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_commands(flow, tiny_model_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in toy_records(240, 1, "t")))
    answer = _cli(
        "fit", str(train), "--model", str(tiny_model_dir), "--run-name", "cli-run", "--epochs", "1",
        "--set", "batch_size=24", "--set", "learning_rate=0.002", "--set", "max_length=16",
        "--host", flow.grpc_host, "--follow",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert "started run cli-run" in answer.stdout and "run cli-run: FINISHED" in answer.stdout
    status = json.loads(_cli("status", "cli-run", "--host", flow.grpc_host).stdout)
    assert status["status"] == "FINISHED" and status["recipe"]["batch_size"] == 24
    assert "cli-run" in _cli("runs", "--host", flow.grpc_host).stdout
    assert "epoch 1/1" in _cli("logs", "cli-run", "--host", flow.grpc_host).stdout
    # no evaluation set: data_aware holds a validation slice out of the small data, so val_loss is compared
    assert "val_loss" in _cli("metrics", "cli-run", "--host", flow.grpc_host).stdout
    downloaded = _cli("download", "cli-run", str(tmp_path), "--host", flow.grpc_host)
    assert downloaded.returncode == 0 and (tmp_path / "cli-run.zip").is_file()
    encoded = _cli("encode", "how do cats eat", "--model", str(tmp_path / "cli-run.zip"))
    assert "dim 32" in encoded.stdout
    served = _cli("encode", "how do cats eat", "--host", flow.grpc_host)
    assert "dim 32" in served.stdout, served.stderr
    missing = _cli("status", "ghost", "--host", flow.grpc_host)
    assert missing.returncode == 2 and "no run named 'ghost'" in missing.stderr


@pytest.mark.parametrize(
    "command", ["demo", "fit", "status", "logs", "metrics", "runs", "cancel", "download", "encode", "models", "delete"]
)
def test_every_command_has_help(command):
    answer = _cli(command, "--help")
    assert answer.returncode == 0 and "usage: tunerflow " + command in answer.stdout


def test_http_requests_larger_than_jinas_100_documents(flow):
    """jina's own HTTP gateway answered only the first 100 documents of a larger body; ours answers all."""
    from tunerflow.client.connection import Connection
    from tunerflow.client.remote_encode import remote_encode
    from tunerflow.serving.documents import LabeledText

    records = toy_records(250, 7, "h")
    docs = [LabeledText(id=r.id, text=r.text, label=r.label) for r in records]
    counts = Connection(flow.http_host).upload("over-http", docs, chunk_size=512)  # one request of 250
    assert counts["documents"] == 250
    vectors = remote_encode([r.text for r in records], flow.http_host, batch_size=256)
    assert vectors.shape == (250, 32)
    np.testing.assert_allclose(vectors, remote_encode([r.text for r in records], flow.grpc_host), atol=1e-5)


def test_client_sends_the_key_and_names_a_refusal(flow):
    from tunerflow.client.connection import AccessDeniedError, Connection

    for host in (flow.grpc_host, flow.http_host):
        assert "datasets" in Connection(host).call("/datasets/list")
        with pytest.raises(AccessDeniedError, match="missing or unknown API key") as refused:
            Connection(host, api_key="not-the-key-of-this-flow").call("/datasets/list")
        assert refused.value.status == 401
    denied = _cli("runs", "--host", flow.http_host)
    assert denied.returncode == 0, denied.stderr  # the CLI reads $TUNERFLOW_API_KEY


def test_the_host_comes_from_the_environment_when_not_given(monkeypatch):
    from tunerflow.client.connection import Connection

    monkeypatch.setenv("TUNERFLOW_HOST", "http://10.0.0.7:8080")
    assert Connection().host == "http://10.0.0.7:8080"
    assert Connection("http://127.0.0.1:1").host == "http://127.0.0.1:1"  # an explicit host wins
    monkeypatch.delenv("TUNERFLOW_HOST")
    assert Connection().host.startswith("grpc://")  # config.yml's client.host
