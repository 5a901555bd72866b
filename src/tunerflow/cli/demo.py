"""``tunerflow demo``: the reference guide's whole story on this machine, with bundled data.

Starts flows/train.yml on 127.0.0.1, streams a data set through the client
(Banking77 by default: customer-service intents the bundled model has room to
learn; ``--data quora``: the guide's Quora duplicates, which it mostly knows),
fine-tunes, prints the nine metrics before and after side by side, exports
ONNX, lets the encoder pick up the tuned model and shows the top matches for a
few dev questions before and after, from the served search: the Flow's indexer
stores dev texts and re-embeds them with the tuned model.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from tunerflow.cli.tables import metrics_table
from tunerflow.data import whole_clusters
from tunerflow.settings import PROJECT_DIR, section

DATA = PROJECT_DIR / "data"
# name: (what it is, what a right match is, default training texts: None = all)
DATA_SETS = {
    "banking77": ("Banking77 customer-service intents", "of the same intent", None),
    "quora": ("Quora question duplicates", "a duplicate", 6400),
}
DEFAULT_DATA = "banking77"
SEARCH_QUERIES = 1000  # the before/after search shows questions over the index of this many queries
SHOWN_QUESTIONS = 3
SHOWN_MATCHES = 3


def _read(data: str, name: str) -> list[dict]:
    with gzip.open(DATA / data / name, "rt") as handle:
        return [json.loads(line) for line in handle]


def demo_subset(data: str, train_docs: int | None, eval_queries: int | None):
    """Whole training clusters up to ``train_docs`` texts of data set ``data``; the first ``eval_queries``
    dev queries and an index of their matches plus a proportional share of the distractors (None: all)."""
    train = _read(data, "train.jsonl.gz")
    if train_docs is not None:
        train = whole_clusters(train, train_docs, label=lambda row: row["label"])
    queries, index = _read(data, "query_dev.jsonl.gz"), _read(data, "index_dev.jsonl.gz")
    if eval_queries is not None and eval_queries < len(queries):
        queries, index = dev_subset(queries, index, eval_queries)
    return train, queries, index


def dev_subset(queries: list[dict], index: list[dict], count: int) -> tuple[list[dict], list[dict]]:
    """The first ``count`` queries, their duplicates in the index and the same share of distractors."""
    query_labels = {row["label"] for row in queries}
    wanted = {row["label"] for row in queries[:count]}
    duplicates = [row for row in index if row["label"] in wanted]
    distractors = [row for row in index if row["label"] not in query_labels]
    return queries[:count], duplicates + distractors[: round(count / len(queries) * len(distractors))]


def _docs(rows: list[dict], prefix: str):
    from docarray import DocList

    from tunerflow.serving.documents import LabeledText

    return DocList[LabeledText](
        [LabeledText(id=f"{prefix}{i}", text=row["text"], label=str(row["label"])) for i, row in enumerate(rows)]
    )


def _index_for_search(rows: list[dict], host: str) -> dict:
    """Store the search texts in the served indexer (ids ``search-<position>``)."""
    from tunerflow.client.search import index
    from tunerflow.search.documents import SearchDoc

    docs = [SearchDoc(id=f"search-{i}", text=row["text"], label=str(row["label"])) for i, row in enumerate(rows)]
    return index(docs, host=host, progress=False)


def _served_top_matches(texts: list[str], host: str) -> list[list[int]]:
    """The served search's best matches of each text, as positions in the indexed rows."""
    from tunerflow.client.search import search

    answers = search(texts, limit=SHOWN_MATCHES, host=host)
    return [[int(match.id.rsplit("-", 1)[1]) for match in matches] for matches in answers]


def _wait_for_rebuilt_index(host: str, artifact_name: str, timeout: float = 900) -> dict:
    """Wait until the indexer has re-embedded its texts with the published artifact and swapped to it."""
    from tunerflow.client.search import rebuilt_with, search_status

    deadline = time.monotonic() + timeout
    while True:
        status = search_status(host)
        if rebuilt_with(status, artifact_name) or time.monotonic() > deadline:
            return status
        time.sleep(1)


def _wait_for_served_model(connection, artifact_name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = connection.call("/info", target="encoder")
        if Path(info["model"]).name == artifact_name or time.monotonic() > deadline:
            return info
        time.sleep(1)


def _show_search(
    queries: list[dict], index: list[dict], before: np.ndarray, after: np.ndarray, right_match: str
) -> None:
    """Top-1 accuracy before and after, and a few questions whose best match changed."""

    def right(query, match) -> bool:
        return index[match]["label"] == query["label"]

    hits_before = sum(right(q, top[0]) for q, top in zip(queries, before, strict=True))
    hits_after = sum(right(q, top[0]) for q, top in zip(queries, after, strict=True))
    _say(f"    best match is {right_match}: {hits_before}/{len(queries)} questions before, {hits_after} after")
    changed = [i for i in range(len(queries)) if before[i][0] != after[i][0]]
    fixed = [i for i in changed if right(queries[i], after[i][0]) and not right(queries[i], before[i][0])]
    shown = fixed or sorted(changed, key=lambda i: not right(queries[i], after[i][0])) or list(range(len(queries)))
    if changed:
        _say(f"    the best match changed for {len(changed)} questions; wrong before and right after: {len(fixed)}")
        _say("    some of them:")
    for i in shown[:SHOWN_QUESTIONS]:
        _say(f'\n  Q: "{queries[i]["text"]}"')
        for title, top in (("before", before[i]), ("after ", after[i])):
            marks = [("+" if right(queries[i], m) else "-") + f' "{index[m]["text"][:70]}"' for m in top]
            _say(f"    {title}: " + "\n            ".join(marks))
    _say(f"  (+ {right_match}, - not)")


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
    data = args.data or DEFAULT_DATA
    described, right_match, default_docs = DATA_SETS[data]
    train_docs = None if args.full else (args.train_docs or default_docs)
    eval_queries = args.eval_queries
    epochs = args.epochs or (None if args.full else 1)  # --full: the run's own (config.yml's, or data-aware)
    train, queries, index = demo_subset(data, train_docs, eval_queries)
    home = (args.home / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    grpc_port, http_port = args.grpc_port or free_port(), args.http_port or free_port()
    _say(f"tunerflow demo: fine-tune {model} on {described}, then serve it (--data quora for the guide's data)")
    _say(f"  data: {len(train)} training texts, {len(queries)} dev queries against {len(index)} index texts")
    _say(f"  CPU cores: {os.cpu_count()}; state in {home}")
    _say(f"1/6 starting flows/train.yml on 127.0.0.1 (gRPC {grpc_port}, HTTP {http_port}) ...")
    flow = FlowProcess(
        PROJECT_DIR / "flows" / "train.yml",
        grpc_port,
        http_port,
        log_file=home / "flow.log",
        env={"TUNERFLOW_HOME": str(home)},
        uses_with={name: {"model": model, "poll_interval": 1.0} for name in ("encoder", "indexer")},
    )
    flow.start()
    os.environ["TUNERFLOW_API_KEY"] = flow.api_key  # the demo's Flow has one generated write key
    try:
        connection = Connection(flow.grpc_host)
        _say(f"    ready after {time.monotonic() - started:.0f} s")
        search_queries, search_index = dev_subset(queries, index, min(SEARCH_QUERIES, len(queries)))
        query_texts = [q["text"] for q in search_queries]
        _say(f"2/6 indexing {len(search_index)} dev texts in the served search, with the base model ...")
        indexed = _index_for_search(search_index, flow.grpc_host)
        before_top = _served_top_matches(query_texts, flow.grpc_host)
        _say(f"    {indexed['count']} texts indexed; searched them for {len(query_texts)} dev questions")

        _say("3/6 streaming the data to the tuner and starting the run ...")
        options = {"to_onnx": True, "experiment_name": "demo", **({"epochs": epochs} if epochs else {})}
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
        _say(f"\nRetrieval on {data} dev ({len(queries)} queries, {len(index)} texts, limit 20), before and after:")
        _say(metrics_table(metrics))

        record = run.record()
        if not record.get("promoted"):  # the publication gate kept the base model (e.g. the run did not gain)
            _say(f"\nnot served: {record.get('promotion') or record['details']}; the base model keeps serving.")
            return 0
        _say("\n5/6 the encoder swaps in the tuned model by itself; the indexer re-embeds its texts with it ...")
        info = _wait_for_served_model(connection, run.name)
        _say(f"    now serving {info['model']}")
        index_status = _wait_for_rebuilt_index(flow.grpc_host, run.name)
        _say(f"    now searching {index_status['count']} texts embedded by {index_status['model']}")
        after_queries = remote_encode(query_texts[:100], flow.grpc_host)
        after_top = _served_top_matches(query_texts, flow.grpc_host)
        _show_search(search_queries, search_index, before_top, after_top, right_match)

        _say("\n6/6 downloading the artifact and checking its ONNX export ...")
        archive = run.save_artifact(home / "downloads")
        onnx_model = get_model(archive, is_onnx=True)
        local = onnx_model.embed(query_texts[:100])
        served = after_queries
        cosine = (local * served).sum(1) / np.linalg.norm(local, axis=1) / np.linalg.norm(served, axis=1)
        _say(f"    {archive} ({archive.stat().st_size / 1e6:.0f} MB): ONNX vs served PyTorch cosine {cosine.min():.6f}")
        _say(f"\ndone in {time.monotonic() - started:.0f} s.")
        if args.keep_serving:
            _say(
                f"The Flow keeps serving the tuned model (Ctrl-C to stop):\n"
                f"  curl -X POST http://127.0.0.1:{http_port}/encode -H 'Authorization: Bearer {flow.api_key}' "
                f"-H 'Content-Type: application/json' "
                f"""-d '{{"data": [{{"id": "1", "text": "how do i learn python ?"}}]}}'"""
                f"\n  curl -X POST http://127.0.0.1:{http_port}/search -H 'Content-Type: application/json' "
                f"""-d '{{"data": [{{"id": "q", "text": "how do i learn python ?"}}], "parameters": {{"limit": 5}}}}'"""
            )
            while True:
                time.sleep(3600)
        return 0
    finally:
        flow.stop()
