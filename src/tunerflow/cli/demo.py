"""``tunerflow demo``: the reference guide's whole story on this machine, with the bundled Quora data.

Starts flows/train.yml on 127.0.0.1, streams a Quora subset through the
client, fine-tunes, prints the nine metrics before and after side by side,
exports ONNX, lets the encoder pick up the tuned model and shows the top
matches for a few dev questions before and after.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

from tunerflow.cli.tables import metrics_table
from tunerflow.settings import PROJECT_DIR, section

QUORA = PROJECT_DIR / "data" / "quora"
DEFAULT_TRAIN_DOCS = 6400
DEFAULT_EVAL_QUERIES = 1000
SHOWN_QUESTIONS = 3


def _read(name: str) -> list[dict]:
    with gzip.open(QUORA / name, "rt") as handle:
        return [json.loads(line) for line in handle]


def quora_subset(train_docs: int | None, eval_queries: int | None):
    """Whole training clusters up to ``train_docs`` texts; the first ``eval_queries`` dev queries and
    an index of their duplicates plus a proportional share of the distractors (None: everything)."""
    train = _read("train.jsonl.gz")
    if train_docs is not None:
        by_label = defaultdict(list)
        for row in train:
            by_label[row["label"]].append(row)
        train = []
        for rows in by_label.values():
            if len(train) >= train_docs:
                break
            train.extend(rows)
    queries, index = _read("query_dev.jsonl.gz"), _read("index_dev.jsonl.gz")
    if eval_queries is not None and eval_queries < len(queries):
        share = eval_queries / len(queries)
        queries = queries[:eval_queries]
        wanted = {row["label"] for row in queries}
        all_query_labels = {row["label"] for row in _read("query_dev.jsonl.gz")}
        duplicates = [row for row in index if row["label"] in wanted]
        distractors = [row for row in index if row["label"] not in all_query_labels]
        index = duplicates + distractors[: round(share * len(distractors))]
    return train, queries, index


def _docs(rows: list[dict], prefix: str):
    from docarray import DocList

    from tunerflow.serving.documents import LabeledText

    return DocList[LabeledText](
        [LabeledText(id=f"{prefix}{i}", text=row["text"], label=str(row["label"])) for i, row in enumerate(rows)]
    )


def _top_matches(query_vectors: np.ndarray, index_vectors: np.ndarray, k: int = 3) -> np.ndarray:
    def unit(m):
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    scores = unit(query_vectors) @ unit(index_vectors).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _wait_for_served_model(connection, artifact_name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = connection.call("/info", target="encoder")
        if Path(info["model"]).name == artifact_name or time.monotonic() > deadline:
            return info
        time.sleep(1)


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(args) -> int:
    from tunerflow import get_model
    from tunerflow.client import EvaluationCallback, fit
    from tunerflow.client.connection import Connection
    from tunerflow.client.flow_process import FlowProcess, free_port
    from tunerflow.client.remote_encode import remote_encode

    started = time.monotonic()
    recipe = section("recipe")
    model = args.model or recipe["model"]
    train_docs = None if args.full else (args.train_docs or DEFAULT_TRAIN_DOCS)
    eval_queries = None if args.full else (args.eval_queries or DEFAULT_EVAL_QUERIES)
    epochs = args.epochs or (recipe["epochs"] if args.full else 1)
    train, queries, index = quora_subset(train_docs, eval_queries)
    home = (args.home / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    grpc_port, http_port = args.grpc_port or free_port(), args.http_port or free_port()
    _say(f"tunerflow demo: fine-tune {model} on Quora question duplicates, then serve it")
    _say(f"  data: {len(train)} training texts, {len(queries)} dev queries against {len(index)} index texts")
    _say(f"  CPU cores: {os.cpu_count()}; state in {home}")
    _say(f"1/6 starting flows/train.yml on 127.0.0.1 (gRPC {grpc_port}, HTTP {http_port}) ...")
    flow = FlowProcess(
        PROJECT_DIR / "flows" / "train.yml",
        grpc_port,
        http_port,
        log_file=home / "flow.log",
        env={"TUNERFLOW_HOME": str(home)},
        uses_with={"encoder": {"model": model, "poll_interval": 1.0}},
    )
    flow.start()
    try:
        connection = Connection(flow.grpc_host)
        _say(f"    ready after {time.monotonic() - started:.0f} s")
        shown = [i for i, q in enumerate(queries) if any(r["label"] == q["label"] for r in index)][:SHOWN_QUESTIONS]
        shown_texts = [queries[i]["text"] for i in shown]
        index_texts = [row["text"] for row in index]
        _say("2/6 searching with the base model served by the encoder ...")
        before_index = remote_encode(index_texts, flow.grpc_host)
        before_top = _top_matches(remote_encode(shown_texts, flow.grpc_host), before_index)

        _say("3/6 streaming the data to the tuner and starting the run ...")
        options = {"epochs": epochs, "to_onnx": True, "experiment_name": "demo"}
        for key in ("device", "precision"):
            if getattr(args, key):
                options[key] = getattr(args, key)
        run = fit(
            model,
            train_data=_docs(train, "train-"),
            callbacks=[EvaluationCallback(query_data=_docs(queries, "query-"), index_data=_docs(index, "index-"))],
            host=flow.grpc_host,
            **options,
        )
        _say(f"4/6 run {run.name}: evaluating before, training, evaluating after each epoch ...")
        for line in run.stream_logs():
            if any(word in line for word in ("epoch ", "evaluation", "best", "training:", "keeping", "failed")):
                _say("    " + line.split(" INFO ", 1)[-1][:160])
        status = run.status()
        if status["status"] != "FINISHED":
            _say(f"run ended {status['status']}: {status['details']}")
            return 1
        metrics = run.metrics()
        _say("\nRetrieval on the Quora dev subset (limit 20, cosine), before and after fine-tuning:")
        _say(metrics_table(metrics))

        _say("\n5/6 the encoder swaps in the tuned model by itself ...")
        info = _wait_for_served_model(connection, run.name)
        _say(f"    now serving {info['model']}")
        after_index = remote_encode(index_texts, flow.grpc_host)
        after_top = _top_matches(remote_encode(shown_texts, flow.grpc_host), after_index)
        for row, position in enumerate(shown):
            query = queries[position]
            _say(f'\n  Q: "{query["text"]}"')
            for title, top in (("before", before_top[row]), ("after ", after_top[row])):
                marks = [
                    ("+" if index[m]["label"] == query["label"] else "-") + f' "{index[m]["text"][:70]}"' for m in top
                ]
                _say(f"    {title}: " + "\n            ".join(marks))
        _say("  (+ a duplicate of the question, - not)")

        _say("\n6/6 downloading the artifact and checking its ONNX export ...")
        archive = run.save_artifact(home / "downloads")
        onnx_model = get_model(archive, is_onnx=True)
        local = onnx_model.embed(shown_texts)
        served = remote_encode(shown_texts, flow.grpc_host)
        cosine = (local * served).sum(1) / np.linalg.norm(local, axis=1) / np.linalg.norm(served, axis=1)
        _say(f"    {archive} ({archive.stat().st_size / 1e6:.0f} MB): ONNX vs served PyTorch cosine {cosine.min():.6f}")
        _say(f"\ndone in {time.monotonic() - started:.0f} s.")
        if args.keep_serving:
            _say(
                f"The Flow keeps serving the tuned model (Ctrl-C to stop):\n"
                f"  curl -X POST http://127.0.0.1:{http_port}/encode -H 'Content-Type: application/json' "
                f"""-d '{{"data": [{{"id": "1", "text": "how do i learn python ?"}}]}}'"""
            )
            while True:
                time.sleep(3600)
        return 0
    finally:
        flow.stop()
