"""Where served ``/encode`` time goes: client, gateway and encoder, at 32, 128 and 512 documents per request.

Not a test. Two parts, in one process, so that every figure is a ratio taken in the same run:

* **stages** (in-process): the backend's ``embed(texts)`` alone, then each piece of work a served
  request adds around it - tokenising, building the client's DocList, the request's protobuf
  (client serialises, encoder parses), the encoder's endpoint on a DocList (texts out, embeddings
  in), the answer's protobuf (encoder serialises, client parses).
* **served**: a Flow (flows/serve.yml, our gateway) started on free ports; the same texts posted to
  ``/encode`` over gRPC (jina's client) and HTTP (a plain JSON POST), latency per request.

Each figure is wall time and CPU time (user + system). On a shared machine wall time swings with
the load while CPU time barely does, so the attribution uses CPU seconds: in-process stages from
this process's clock, served requests from /proc for the client (this process), the gateway and
the encoder (the Flow process that loaded torch). Run with ``--threads 1`` (the default here) so
that CPU time is work, not idle threads spinning. Medians of ``--repeats`` rounds; within a round
every measurement runs once, in turn, so drift moves all of them alike.

    .venv/bin/python bench/serving_profile.py --backend torch --sizes 32 128 512 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "executors" / "encoder"))
from common import ROOT, machine, quora_dev  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def sample_texts(count: int, seed: int) -> list[str]:
    queries, index = quora_dev()
    texts = [q["text"] for q in queries] + [r["text"] for r in index]
    chosen = np.random.default_rng(seed).choice(len(texts), size=count, replace=False)
    return [texts[i] for i in chosen]


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def flow_processes(flow) -> dict[str, list[int]]:
    """The Flow's processes by role: ``gateway`` (listens on the gRPC port), ``encoder`` (the other
    workers) and ``main`` (the ``jina flow`` process itself)."""
    group = os.getpgid(flow.process.pid)
    gateway_sockets = {f"socket:[{inode}]" for inode in listening_inodes(flow.grpc_port)}
    roles: dict[str, list[int]] = {"gateway": [], "encoder": [], "main": [flow.process.pid]}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == flow.process.pid:
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except (OSError, ProcessLookupError):
            continue
        roles["gateway" if links & gateway_sockets else "encoder"].append(int(entry.name))
    return roles


def timed(function, pids: dict[str, list[int]] | None = None) -> dict[str, float]:
    """Wall and CPU seconds of one call; with ``pids``, also each role's CPU seconds meanwhile."""
    before = {role: sum(process_cpu(p) for p in group) for role, group in (pids or {}).items()}
    cpu, started = time.process_time(), time.perf_counter()
    function()
    result = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    for role, group in (pids or {}).items():
        result[f"cpu {role}"] = sum(process_cpu(p) for p in group) - before[role]
    return result


def stage_functions(texts: list[str], executor) -> dict:
    """One callable per stage of a served request, on ``texts``."""
    from docarray import DocList
    from jina.types.request.data import DataRequest

    from tunerflow.inference.batching import tokenize
    from tunerflow.serving.documents import LabeledText
    from tunerflow.serving.encoder_params import EncodeParameters

    model = executor.served.current
    doc_list = DocList[LabeledText]

    def build():
        return doc_list([LabeledText(id=str(i), text=t) for i, t in enumerate(texts)])

    request = DataRequest()
    request.data.docs = build()
    request_bytes = request.proto.SerializeToString()
    answered = executor.encode(build(), EncodeParameters())
    reply = DataRequest()
    reply.data.docs = answered
    reply_bytes = reply.proto.SerializeToString()

    def request_serialise():
        req = DataRequest()
        req.data.docs = build()
        return req.proto.SerializeToString()

    def request_parse():
        req = DataRequest(request_bytes)
        req.document_array_cls = doc_list
        return len(req.docs)

    def reply_serialise():
        req = DataRequest(request_bytes)
        req.data.set_docs_convert_arrays(answered)
        return req.proto.SerializeToString()

    def reply_parse():
        req = DataRequest(reply_bytes)
        req.document_array_cls = doc_list
        return [doc.embedding for doc in req.docs]

    docs_for_endpoint = [build() for _ in range(1)]
    return {
        "embed": lambda: model.embed(texts),
        "tokenize": lambda: tokenize(model.tokenizer, texts, model.spec.max_length),
        "client: build DocList": build,
        "client: serialise request (incl. build)": request_serialise,
        "encoder: parse request": request_parse,
        "encoder: endpoint on DocList": lambda: executor.encode(docs_for_endpoint[0], EncodeParameters()),
        "encoder: serialise answer": reply_serialise,
        "client: parse answer": reply_parse,
        "_bytes": (len(request_bytes), len(reply_bytes)),
    }


def served_functions(texts: list[str], flow, key: str) -> dict:
    import requests
    from docarray import DocList
    from jina import Client

    from tunerflow.serving.documents import LabeledText

    client = Client(host=flow.grpc_host)
    metadata = (("authorization", f"Bearer {key}"),)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    body = {"data": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}

    def grpc():
        docs = DocList[LabeledText]([LabeledText(id=str(i), text=t) for i, t in enumerate(texts)])
        answer = client.post(
            "/encode", inputs=docs, request_size=len(texts), metadata=metadata, return_type=DocList[LabeledText]
        )
        assert len(answer) == len(texts) and answer[0].embedding is not None
        return np.stack([np.asarray(d.embedding) for d in answer])

    def http():
        answer = session.post(f"{flow.http_host}/encode", json=body, timeout=300)
        answer.raise_for_status()
        data = answer.json()["data"]
        assert len(data) == len(texts)
        return np.asarray([d["embedding"] for d in data], dtype=np.float32)

    return {"served gRPC": grpc, "served HTTP": http}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=32, help="the encoder's batch_size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-served", action="store_true", help="in-process stages only")
    parser.add_argument("--threads", type=int, default=1, help="compute threads, in-process and served")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    from tunerflow_encoder import EncoderExecutor

    settings = {"backend": args.backend, "dtype": args.dtype, "batch_size": args.batch_size}
    executor = EncoderExecutor(model=MODEL, threads=args.threads, **settings)
    flow = None
    if not args.no_served:
        import multiprocessing

        multiprocessing.set_start_method("spawn", force=True)
        from tunerflow.client.flow_process import FlowProcess, free_port

        home = Path(tempfile.mkdtemp(prefix="tunerflow-profile-"))
        flow = FlowProcess(
            ROOT / "flows" / "serve.yml",
            free_port(),
            free_port(),
            home / "flow.log",
            env={"TUNERFLOW_HOME": str(home)},
            uses_with={"encoder": {**settings, "threads": args.threads}},
        ).start()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    pids = flow_processes(flow) if flow is not None else {}
    rows = {}
    try:
        for size in args.sizes:
            texts = sample_texts(size, seed=size)
            stages = stage_functions(texts, executor)
            request_bytes, reply_bytes = stages.pop("_bytes")
            if flow is not None:
                stages.update(served_functions(texts, flow, flow.api_key))
            for function in stages.values():
                function()  # warm-up
            seconds = {name: [] for name in stages}
            for _ in range(args.repeats):
                for name, function in stages.items():
                    seconds[name].append(timed(function, pids if name.startswith("served") else None))
            rows[size] = {"medians_ms": {}}
            for name, values in seconds.items():
                rows[size]["medians_ms"][name] = {
                    key: round(statistics.median(v[key] for v in values) * 1000, 2) for key in values[0]
                }
            rows[size]["bytes"] = {"request": request_bytes, "answer": reply_bytes}
            print(json.dumps({"size": size, **rows[size]}), flush=True)
    finally:
        if flow is not None:
            flow.stop()
        executor.close()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nmachine: {json.dumps(machine())}; loadavg before {load_before}, after {load_after}")
    print(f"settings: {settings} {args.label}")
    print(f"processes: {pids}")
    print("\nms per request, median; CPU ms (wall ms); served rows: CPU of client + gateway + encoder")
    print("\n| stage | " + " | ".join(f"{s} docs" for s in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in next(iter(rows.values()))["medians_ms"]:
        cells = []
        for row in rows.values():
            value = row["medians_ms"][name]
            if name.startswith("served"):
                parts = [value["cpu"], value.get("cpu gateway", 0), value.get("cpu encoder", 0)]
                parts[1] += value.get("cpu main", 0)
                cells.append(" + ".join(f"{p:.0f}" for p in parts) + f" ({value['wall']:.0f})")
            else:
                cells.append(f"{value['cpu']:.1f} ({value['wall']:.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
