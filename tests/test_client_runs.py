"""Run management, experiments and models in the reference tool's words, against flows/train.yml on loopback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.training_helpers import toy_options, toy_records

jina = pytest.importorskip("jina")


@pytest.fixture(scope="module")
def flow(tmp_path_factory, tiny_model_dir):
    from tests.flows import train_flow_process

    with train_flow_process(tmp_path_factory.mktemp("client-runs-home"), tiny_model_dir) as process:
        yield process


def _fit(flow, tiny_model_dir, run_name, host=None, **overrides):
    import tunerflow

    options = toy_options(tiny_model_dir, epochs=1, publish="manual", **overrides)
    for key in ("train_data", "eval_query_data", "eval_index_data", "model"):
        options.pop(key)
    return tunerflow.fit(
        model=str(tiny_model_dir),
        train_data=[(r.text, r.label) for r in toy_records(96, 1, "t")],
        run_name=run_name,
        host=host or flow.grpc_host,
        **options,
    )


def test_runs_listed_fetched_and_deleted_by_name_and_experiment(flow, tiny_model_dir, tmp_path, capsys):
    import tunerflow
    from tunerflow.client.connection import RemoteError

    queries = [(r.text, r.label) for r in toy_records(24, 2, "q")]
    first = tunerflow.fit(
        model=str(tiny_model_dir),
        train_data=[(r.text, r.label) for r in toy_records(96, 1, "t")],
        callbacks=[tunerflow.EvaluationCallback(query_data=queries)],
        run_name="ports",
        experiment_name="exp-one",
        host=flow.grpc_host,
        **{
            k: v
            for k, v in toy_options(tiny_model_dir, epochs=1, publish="manual").items()
            if "data" not in k and k != "model"
        },
    )
    second = _fit(flow, tiny_model_dir, "ports-2", host=flow.http_host, experiment_name="exp-one")
    assert first.wait(0.5, 240)["status"] == "FINISHED" and second.wait(0.5, 240)["status"] == "FINISHED"

    # get_run: the second positional argument is the experiment, as in the reference tool
    run = tunerflow.get_run("ports", "exp-one", host=flow.http_host)
    assert run.experiment_name == "exp-one" and run.config["epochs"] == 1 and run.config["batch_size"] == 24
    assert run.artifact_id == "ports" and set(run.status()) >= {"status", "details"}
    with pytest.raises(RemoteError, match="no run named 'ports' in experiment 'default'") as missing:
        tunerflow.get_run("ports", "default", host=flow.http_host)
    assert missing.value.status == 404
    run.display_metrics()
    table = capsys.readouterr().out
    assert "before" in table and "after" in table and "ndcg" in table.lower()
    assert run.display_metrics() is None

    # list_runs: Run objects, newest first, paged, by experiment
    listed = tunerflow.list_runs("exp-one", host=flow.grpc_host)
    assert [r.name for r in listed] == ["ports-2", "ports"] and all(isinstance(r, tunerflow.Run) for r in listed)
    assert listed[0].config["epochs"] == 1
    assert [r.name for r in tunerflow.list_runs("exp-one", page=2, size=1, host=flow.grpc_host)] == ["ports"]

    # delete_run: that run's record, log and artifact, never the run whose name it prefixes
    tunerflow.delete_run("ports", "exp-one", host=flow.grpc_host)
    with pytest.raises(RemoteError, match="no run named 'ports'"):
        tunerflow.get_run("ports", host=flow.grpc_host)
    survivor = tunerflow.get_run("ports-2", host=flow.grpc_host)
    assert survivor.save_artifact(tmp_path).name == "ports-2.zip" and "epoch 1/1" in survivor.logs()
    assert [r.name for r in tunerflow.list_runs("exp-one", host=flow.http_host)] == ["ports-2"]


def test_experiments_and_a_running_run_that_must_be_cancelled_first(flow, tiny_model_dir):
    import tunerflow
    from tunerflow.client.connection import RemoteError

    empty = tunerflow.create_experiment("empty-exp", host=flow.http_host)
    assert (empty.name, empty.status, empty.runs) == ("empty-exp", "ACTIVE", 0) and empty.created_at
    with pytest.raises(RemoteError, match="already exists"):
        tunerflow.create_experiment("empty-exp", host=flow.grpc_host)
    group = tunerflow.get_experiment("empty-exp", host=flow.grpc_host)
    long_run = group.create_training_run(
        str(tiny_model_dir), [(r.text, r.label) for r in toy_records(96, 1, "t")], run_name="long-run",
        **{k: v for k, v in toy_options(tiny_model_dir, epochs=200).items() if "data" not in k and k != "model"},
    )  # fmt: skip
    with pytest.raises(RemoteError, match="cancel it first") as refused:
        tunerflow.delete_run("long-run", host=flow.http_host)
    assert refused.value.status == 409
    with pytest.raises(RemoteError, match="cancel it first"):
        tunerflow.delete_experiment("empty-exp", host=flow.grpc_host)  # its runs first, all or nothing
    assert [r.name for r in group.list_runs()] == ["long-run"]
    long_run.cancel()
    assert long_run.wait(0.5, 120)["status"] == "CANCELLED"
    names = [e.name for e in tunerflow.list_experiments(host=flow.grpc_host)]
    assert "empty-exp" in names and names == [e.name for e in tunerflow.list_experiments(1, 100, host=flow.http_host)]
    deleted = tunerflow.delete_experiment("empty-exp", host=flow.grpc_host)
    assert deleted.name == "empty-exp" and deleted.runs == 1
    with pytest.raises(RemoteError, match="no run named 'long-run'"):
        tunerflow.get_run("long-run", host=flow.grpc_host)
    with pytest.raises(RemoteError, match="no experiment named 'empty-exp'"):
        tunerflow.get_experiment("empty-exp", host=flow.http_host)


def test_models_resolve_before_anything_is_uploaded(flow, tiny_model_dir):
    import tunerflow
    from tunerflow.client.connection import Connection, RemoteError

    stored = lambda: Connection(flow.grpc_host).call("/datasets/list")["datasets"]  # noqa: E731
    before = stored()
    for host in (flow.grpc_host, flow.http_host):
        with pytest.raises(RemoteError, match="hf download bert-base-cased"):
            tunerflow.fit("bert-base-cased", [("a", 1), ("b", 1)], run_name="no-such-model", host=host)
    assert stored() == before  # nothing uploaded
    offered = tunerflow.list_models(details=True, host=flow.http_host)
    tiny = [m for m in offered if m["name"].endswith(tiny_model_dir.name) and m["source"] == "root"]
    assert tiny and tiny[0]["architecture"] == "BertModel" and tiny[0]["dimension"] == 32
    answer = subprocess.run(
        [sys.executable, "-m", "tunerflow.cli", "models", "--host", flow.grpc_host],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert "BertModel" in answer.stdout and tiny[0]["name"] in answer.stdout
