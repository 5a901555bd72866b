"""How the client sends a served ``/encode`` job: one call per request, or one stream with requests in flight.

Not a test. One Flow (flows/serve.yml) and the same backend in-process, in one process, so that every
figure is a ratio taken in the same run. For each request size, each round times, in turn:

* ``per-call``: the backend in-process, called with ``size`` texts at a time (what a served request of
  that size costs the backend itself);
* ``served one post per request``: a jina ``Client.post`` for each request, one after another (the
  client before issue 14's streaming change);
* ``served stream, in_flight N``: ``Connection.encode`` - one gRPC stream, at most N requests on their
  way at a time (jina's ``prefetch``).

Medians of ``--repeats`` rounds; texts/s and the ratio to ``per-call`` of the same round, and the CPU
seconds each way took per 1,000 texts in this process (the client, or the backend for ``per-call``) and in
the Flow's processes (gateway and encoder): CPU time moves far less than throughput when the machine's
cores are shared with other tenants.

    PYTHONPATH=src:bench .venv/bin/python bench/request_streaming.py --backend torch --sizes 512 128 32 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, append_result, machine, quora_dev  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def dev_texts(count: int) -> list[str]:
    """The first ``count`` of a fixed random sample of the Quora dev texts (as bench/encode.py takes them)."""
    queries, index = quora_dev()
    texts = [q["text"] for q in queries] + [r["text"] for r in index]
    chosen = np.random.default_rng(0).choice(len(texts), size=count, replace=False)
    return [texts[i] for i in sorted(chosen)]


def flow_cpu_seconds(flow) -> float:
    """User and system CPU seconds of the Flow's processes so far (its launcher, the gateway, the executors)."""
    import psutil

    root = psutil.Process(flow.process.pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def one_post_per_request(connection, texts: list[str], size: int) -> np.ndarray:
    """The client as it was: a ``Client.post`` of its own for each request, waiting for each answer."""
    from docarray import DocList

    from tunerflow.client.connection import embeddings_from_response
    from tunerflow.serving.documents import LabeledText

    blocks = []
    for start in range(0, len(texts), size):
        part = texts[start : start + size]
        docs = DocList[LabeledText]([LabeledText(id=str(i), text=t) for i, t in enumerate(part)])
        output = np.empty((len(part), 0), dtype=np.float32)
        for response in connection._post("/encode", docs, {}, "encoder"):
            ids, block = embeddings_from_response(response)
            if len(ids):
                output = output if output.shape[1] else np.empty((len(part), block.shape[1]), np.float32)
                output[ids] = block
        blocks.append(output)
    return np.concatenate(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 128, 32])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "request-streaming.jsonl")
    args = parser.parse_args()

    import multiprocessing

    multiprocessing.set_start_method("spawn", force=True)
    from tunerflow import get_model
    from tunerflow.client.connection import Connection
    from tunerflow.client.flow_process import FlowProcess, free_port

    texts = dev_texts(args.texts)
    settings = {"backend": args.backend, "dtype": args.dtype}
    model = get_model(MODEL, batch_size=256, **settings)  # batching as the encoder's config.yml (max_tokens 1024)
    home = Path(tempfile.mkdtemp(prefix="tunerflow-streaming-"))
    grpc_port = free_port()
    flow = FlowProcess(
        ROOT / "flows" / "serve.yml",
        grpc_port,
        free_port(),
        home / "flow.log",
        env={"TUNERFLOW_HOME": str(home)},
        uses_with={"encoder": settings},
    ).start()
    info = {"machine": machine(), "command": " ".join(sys.argv), "backend": args.backend, "dtype": args.dtype}
    try:
        connection = Connection(f"grpc://127.0.0.1:{grpc_port}", flow.api_key)
        reference = model.embed(texts)
        bound = 0.95 if "int8" in args.backend else 0.9999  # int8: activation scales depend on the batch
        for size in args.sizes:
            ways = {
                "per-call": lambda s=size: np.concatenate(
                    [model.embed(texts[i : i + s]) for i in range(0, len(texts), s)]
                )
            }
            ways["served one post per request"] = lambda s=size: one_post_per_request(connection, texts, s)
            for count in args.in_flight:
                ways[f"served stream, in_flight {count}"] = lambda s=size, c=count: connection.encode(
                    texts, batch_size=s, in_flight=c
                )
            for name, way in ways.items():  # warm-up, and every way gives the same embeddings
                cosine = (way() * reference).sum(1) / np.linalg.norm(reference, axis=1) ** 2
                assert cosine.min() > bound, f"{name}: cosine to one call {cosine.min():.4f}"
            rates = {name: [] for name in ways}
            ratios = {name: [] for name in ways}
            cpu = {name: {"client": [], "flow": []} for name in ways}
            per_k = 1000 / len(texts)
            for _ in range(args.repeats):
                seconds = {}
                for name, way in ways.items():
                    started, client_cpu, served_cpu = time.perf_counter(), time.process_time(), flow_cpu_seconds(flow)
                    way()
                    seconds[name] = time.perf_counter() - started
                    cpu[name]["client"].append((time.process_time() - client_cpu) * per_k)
                    cpu[name]["flow"].append((flow_cpu_seconds(flow) - served_cpu) * per_k)
                for name, value in seconds.items():
                    rates[name].append(len(texts) / value)
                    ratios[name].append(seconds["per-call"] / value)
            row = {
                **info,
                "request_size": size,
                "texts_per_s": {name: round(statistics.median(v), 1) for name, v in rates.items()},
                "ratio_to_per_call": {name: round(statistics.median(v), 3) for name, v in ratios.items()},
                "ratio_rounds": {name: [round(r, 3) for r in v] for name, v in ratios.items()},
                "cpu_s_per_1000_texts": {
                    name: {side: round(statistics.median(v), 3) for side, v in sides.items()}
                    for name, sides in cpu.items()
                },
            }
            append_result(args.out, row)
            keys = ("request_size", "texts_per_s", "ratio_to_per_call", "cpu_s_per_1000_texts")
            print(json.dumps({k: row[k] for k in keys}), flush=True)
    finally:
        flow.stop()


if __name__ == "__main__":
    main()
