"""A reference-tool script ports by changing its imports: the guide's script run against flows/train.yml.

tests/reference/finetuner_guide.py is the text-to-text guide's script as its users run it. It runs here with
only the lines in ``PORT`` changed (the imports, and a local model for ``bert-base-cased``, which is not on
this machine); the host and the key come from ``$TUNERFLOW_HOST`` and ``$TUNERFLOW_API_KEY``, as a
ported script's would. The data are docarray v2 documents of the user's own type (text and tags).
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.training_helpers import toy_records

jina = pytest.importorskip("jina")

GUIDE = Path(__file__).parent / "reference" / "finetuner_guide.py"
PORT = {
    "import finetuner": "import tunerflow as finetuner",
    "from finetuner.callback import EvaluationCallback": "from tunerflow.callback import EvaluationCallback",
    "    model='bert-base-cased',": "    model=LOCAL_MODEL,",
}


def ported(source: str) -> str:
    """The guide's script with the ``PORT`` lines replaced; every other line as written."""
    lines = source.splitlines()
    assert set(PORT) <= set(lines), set(PORT) - set(lines)
    return "\n".join(PORT.get(line, line) for line in lines) + "\n"


@pytest.fixture(scope="module")
def flow(tmp_path_factory, tiny_model_dir):
    from tests.flows import environment, train_flow_process

    with train_flow_process(tmp_path_factory.mktemp("porting-home"), tiny_model_dir) as process:
        with environment(TUNERFLOW_HOST=process.grpc_host):  # as a ported script's environment says
            yield process


def _user_docs(records):
    """The user's own docarray v2 documents: a text and the reference tool's ``finetuner_label`` tag."""
    from docarray import BaseDoc, DocList

    class Question(BaseDoc):
        text: str
        tags: dict = {}

    return DocList[Question]([Question(text=r.text, tags={"finetuner_label": r.label}) for r in records])


def test_the_guides_script_runs_with_its_imports_changed(flow, tiny_model_dir, tmp_path, monkeypatch):
    from docarray import DocList
    from docarray.documents import TextDoc

    import tunerflow

    monkeypatch.chdir(tmp_path)  # run.save_artifact('bert-model') writes under the working directory
    test_da = DocList[TextDoc]([TextDoc(text="some text to encode")])
    namespace = {
        "LOCAL_MODEL": str(tiny_model_dir),
        "train_data": _user_docs(toy_records(256, 1, "t")),
        "query_data": _user_docs(toy_records(24, 2, "q")),
        "index_data": _user_docs(toy_records(96, 3, "i")),
        "test_da": test_da,
    }
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(ported(GUIDE.read_text()), str(GUIDE), "exec"), namespace)  # noqa: S102

    status = printed.getvalue().splitlines()[0]
    assert "'status': 'CREATED'" in status or "'status': 'STARTED'" in status, status
    embedded = np.stack(test_da.embedding)  # docarray v2: a DocList's column is a list (v1's .embeddings)
    assert embedded.shape == (1, 32) and np.isfinite(embedded).all()
    artifact = Path(namespace["artifact"])
    assert artifact.resolve().parent == tmp_path / "bert-model" and "model.onnx" in zipfile.ZipFile(artifact).namelist()
    onnx = namespace["model"]  # the script's last line: get_model(artifact, is_onnx=True)
    torch_vectors = tunerflow.encode(tunerflow.get_model(artifact), ["some text to encode"])
    np.testing.assert_allclose(tunerflow.encode(onnx, ["some text to encode"]), torch_vectors, atol=1e-4)
    np.testing.assert_allclose(embedded, torch_vectors, atol=1e-5)

    run = tunerflow.get_run("finetune-quora-dataset-bert-base-cased", "finetune-quora-dataset")
    assert run.status()["status"] == "FINISHED"
    log = "\n".join(run.stream_logs(interval=0.2))
    assert "epoch 3/3" in log, log[-3000:]
    assert run.config["loss"] == "TripletMarginLoss" and run.config["miner"] == "TripletMarginMiner"
    assert run.config["batch_size"] == 128 and run.config["eval_batch_size"] == 32
    assert run.config["learning_rate"] == 1e-5 and run.config["optimizer"] == "Adam"
    assert run.config["experiment_name"] == "finetune-quora-dataset"


def test_a_pair_csv_run_and_a_run_continued_from_its_artifact(flow, tiny_model_dir, tmp_path):
    import tunerflow
    from tunerflow.callback import EvaluationCallback

    by_label: dict = {}
    for record in toy_records(240, 1, "p"):
        by_label.setdefault(record.label, []).append(record.text)
    rows = [(texts[i], texts[i + 1]) for texts in by_label.values() for i in range(0, len(texts) - 1, 2)]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("".join(f'"{query}","{document}"\n' for query, document in rows))  # no header: pairs
    evaluation = EvaluationCallback(
        query_data=[(r.text, r.label) for r in toy_records(24, 2, "q")],
        index_data=[(r.text, r.label) for r in toy_records(96, 3, "i")],
    )
    options = dict(epochs=2, batch_size=16, max_length=16, learning_rate=2e-3, callbacks=[evaluation])
    first = tunerflow.fit(model=str(tiny_model_dir), train_data=str(pairs), run_name="pairs", **options)
    assert first.wait(interval=0.5)["status"] == "FINISHED", first.logs()[-2000:]
    assert first.config["loss"] == "NTXentLoss" and first.config["num_items_per_class"] == 2

    second = tunerflow.fit(train_data=str(pairs), run_name="pairs-again", model_artifact="pairs", **options)
    assert second.wait(interval=0.5)["status"] == "FINISHED", second.logs()[-2000:]
    before, after = first.metrics(), second.metrics()
    assert after["before"] != before["before"]  # the second run did not start from the first one's start...
    assert after["before"] == pytest.approx(before["after"], abs=1e-6)  # ...but from its artifact
