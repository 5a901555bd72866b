"""What a served request's documents cost to convert: docarray's own way against LabeledText's short way.

Not a test. One process, the two ways in turn in every round, so the ratio is taken in one run. Per
request size, the four conversions an ``/encode`` request makes on the encoder's side and the client's:

* ``request in``: the encoder rebuilds the request's documents (id and text) from protobuf;
* ``answer out``: the encoder writes them back with their embeddings (384 floats each);
* ``request out``: the client writes its documents (id and text);
* ``answer in``: documents with embeddings rebuilt from protobuf (the client reads the embeddings straight
  from the message, so this is what any docarray client pays; the REST gateway pays it too);
* ``answer as JSON``: the REST gateway writes those documents into its HTTP answer (docarray's
  ``DocList.to_json`` against ``tunerflow.serving.doc_json.fast_docs_json``, the same bytes).

Milliseconds per request, medians of ``--repeats`` rounds.

    PYTHONPATH=src:bench .venv/bin/python bench/doc_proto.py --sizes 512 128 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, append_result, machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 128, 32])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loops", type=int, default=20, help="conversions timed together in one round")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "doc-proto.jsonl")
    args = parser.parse_args()

    info = {"machine": machine(), "command": " ".join(sys.argv)}
    for size in args.sizes:
        medians = measure(size, args.repeats, args.loops)
        total = {way: round(sum(steps.values()), 2) for way, steps in medians.items()}
        row = {**info, "request_size": size, "ms_per_request": medians, "total_ms": total}
        append_result(args.out, row)
        print(json.dumps({k: row[k] for k in ("request_size", "ms_per_request", "total_ms")}), flush=True)


def measure(size: int, repeats: int, loops: int) -> dict:
    """Median milliseconds of each conversion of a ``size``-document request, each way, taken in turn."""
    from docarray import DocList
    from docarray.proto import DocListProto

    from tunerflow.serving.doc_json import fast_docs_json
    from tunerflow.serving.documents import LabeledText

    generic_out = super(LabeledText, LabeledText).to_protobuf  # docarray's BaseDoc.to_protobuf, unbound
    generic_in = super(LabeledText, LabeledText).from_protobuf

    def docarray_out(docs) -> DocListProto:  # DocList.to_protobuf with docarray's per-document conversion
        message = DocListProto()
        for doc in docs:
            message.docs.append(generic_out(doc))
        return message

    requests = DocList[LabeledText](
        [LabeledText(id=str(i), text=f"how do I top up my card, {i}?") for i in range(size)]
    )
    answers = DocList[LabeledText]([LabeledText(id=doc.id, text=doc.text) for doc in requests])
    answers.embedding = list(np.random.default_rng(0).standard_normal((size, 384), dtype=np.float32))
    request_msg, answer_msg = requests.to_protobuf(), answers.to_protobuf()
    assert docarray_out(answers) == answer_msg and docarray_out(requests) == request_msg
    answered = DocList[LabeledText].from_protobuf(answer_msg)  # what the gateway writes as JSON
    assert fast_docs_json(answered).decode() == answered.to_json()
    ways = {
        "docarray": {
            "request in": lambda: [generic_in(m) for m in request_msg.docs],
            "answer out": lambda: docarray_out(answers),
            "request out": lambda: docarray_out(requests),
            "answer in": lambda: [generic_in(m) for m in answer_msg.docs],
            "answer as JSON": lambda: answered.to_json(),
        },
        "short way": {
            "request in": lambda: DocList[LabeledText].from_protobuf(request_msg),
            "answer out": lambda: answers.to_protobuf(),
            "request out": lambda: requests.to_protobuf(),
            "answer in": lambda: DocList[LabeledText].from_protobuf(answer_msg),
            "answer as JSON": lambda: fast_docs_json(answered),
        },
    }
    ms = {way: {step: [] for step in steps} for way, steps in ways.items()}
    for _ in range(repeats):
        for step in ways["docarray"]:
            for way, steps in ways.items():
                started = time.perf_counter()
                for _ in range(loops):
                    steps[step]()
                ms[way][step].append((time.perf_counter() - started) / loops * 1000)
    return {way: {step: round(statistics.median(v), 2) for step, v in steps.items()} for way, steps in ms.items()}


if __name__ == "__main__":
    main()
