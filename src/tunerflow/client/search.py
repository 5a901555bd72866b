"""Index and search with a served indexer (``flows/train.yml`` or ``flows/search.yml``) over gRPC or HTTP.

``index(data)`` stores texts, ``search(queries)`` answers each query with its best matches and their
scores, ``search_status()`` reports the index (count, model, rebuild progress). Both protocols go
through the tunerflow gateway (API key from ``$TUNERFLOW_API_KEY``) and give the same matches, every
field included.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunerflow.client.connection import Connection, RemoteError, default_chunk_size, max_request_docs
from tunerflow.errors import DataError

TARGET = "indexer"
# Over HTTP, requests hold at most HTTP_MAX_DOCS documents (max_request_docs): the gateway refuses larger
# bodies with 413 and the limit named, and forwards /search queries in chunks, all answered.
QUERY_BATCH = 256


@dataclass(frozen=True)
class SearchMatch:
    """One match of a query, best first.

    Attributes:
        id: the stored document's id.
        text, label, tags: as indexed.
        score: cosine similarity to the query (higher is closer).
    """

    id: str
    score: float
    text: str | None = None
    label: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


def index(
    data: Any,
    host: str | None = None,
    *,
    update: bool = False,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> dict:
    """Store ``data`` in the served index; returns the indexer's counts (``indexed``, ``count``, ``model``).

    Args:
        data: a DocList (``text``, optional ``label`` or ``tags['finetuner_label']``, ``tags``), a list of
            ``(text, label)`` pairs or of strings, or a CSV (``text,label``) / JSONL path.
        host: the Flow (default: ``$TUNERFLOW_HOST``, else config.yml's ``client.host``).
        update: replace documents whose id is stored already (``/update``) instead of refusing them.
        chunk_size: documents per request (at most 10,000 over HTTP).
        progress: show a progress bar (default: when stderr is a terminal).
    """
    connection = Connection(host)
    size = max_request_docs(connection.host, int(chunk_size or default_chunk_size()))
    endpoint = "/update" if update else "/index"
    key = "updated" if update else "indexed"
    bar = _progress_bar(sys.stderr.isatty() if progress is None else progress)
    total, last = 0, {}
    try:
        for batch in _batches(search_docs(data), size):
            last = result_of(post(connection, endpoint, batch)[-1])
            total += int(last.get(key, 0))
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    if not last:
        raise DataError("no documents in the data to index")
    return {**last, key: total}


def search(
    queries: str | Sequence[str],
    limit: int | None = None,
    filter: dict | None = None,  # noqa: A002 - the endpoint's own parameter name
    host: str | None = None,
    batch_size: int = QUERY_BATCH,
) -> list[list[SearchMatch]]:
    """The best ``limit`` matches of each query, best first (a single string counts as one query).

    Args:
        queries: texts.
        limit: matches per query (default 10, at most the index size; 1 to 1000).
        filter: exact-match filter, ``{"label": "3"}`` or ``{"tags": {"lang": "en"}}``.
        host: the Flow (default: ``$TUNERFLOW_HOST``, else config.yml's ``client.host``).
        batch_size: queries per request (at most 10,000 over HTTP).
    """
    from tunerflow.search.documents import SearchDoc

    texts = [queries] if isinstance(queries, str) else list(queries)
    if not texts:
        raise DataError("no queries: give at least one text")
    connection = Connection(host)
    parameters = {key: value for key, value in (("limit", limit), ("filter", filter)) if value is not None}
    answers: list[list[SearchMatch]] = []
    size = max_request_docs(connection.host, batch_size)
    for start in range(0, len(texts), size):
        chunk = [SearchDoc(id=f"q{start + i}", text=text) for i, text in enumerate(texts[start : start + size])]
        for response in post(connection, "/search", chunk, parameters):
            answers.extend(_matches(doc) for doc in response.docs)
    return answers


def search_status(host: str | None = None) -> dict:
    """The index: ``count``, ``dimension``, ``model`` of the vectors, ``backend``, ``rebuild`` progress, ``served``."""
    return result_of(post(Connection(host), "/index/status", [])[-1])


def rebuilt_with(status: dict, model: str) -> bool:
    """Whether ``status`` (of :func:`search_status`) says the index holds ``model``'s vectors, no rebuild running.

    ``model`` may be a path or an artifact name (the last part of the path is compared).
    """
    shards = status.get("shards")
    rebuilds = [s.get("rebuild") for s in (shards if isinstance(shards, list) else [status])]
    running = any(r is not None and r.get("state") == "running" for r in rebuilds)
    return not running and Path(str(status.get("model"))).name == Path(model).name


def post(connection: Connection, endpoint: str, docs: Sequence, parameters: dict | None = None) -> list:
    """Post ``docs`` to the indexer alone in one request; the responses (errors raised as RemoteError).

    Each response has ``docs`` (``SearchDoc``s, with their matches) and ``parameters``, over gRPC and HTTP alike.
    """
    from types import SimpleNamespace

    from docarray import DocList

    from tunerflow.search.documents import SearchDoc

    if not connection.http:
        return connection._post(endpoint, DocList[SearchDoc](docs), parameters or {}, TARGET, doc_type=SearchDoc)
    data = [json.loads(doc.json(exclude_none=True)) for doc in docs]
    body = connection._http(endpoint, data, {**(parameters or {})})
    answer = DocList[SearchDoc]([SearchDoc.parse_obj(doc) for doc in body.get("data") or []])
    return [SimpleNamespace(docs=answer, parameters=body.get("parameters") or {})]


def result_of(response) -> dict:
    """The indexer's answer in ``__results__``: the merger's with shards, else the indexer's only one."""
    from tunerflow.serving.wire import whole_numbers

    results = response.parameters.get("__results__") or {}
    merged = [value for key, value in results.items() if "uses_after" in key]
    own = [value for key, value in results.items() if key.split("/")[0] == TARGET]
    if not (merged or own):
        raise RemoteError(f"no answer from the indexer (answers from: {', '.join(results) or 'none'})")
    return whole_numbers((merged or own)[0])


def search_docs(data: Any) -> Iterator:
    """``SearchDoc``s from any form ``index`` takes; ids ``item-<n>`` where the data has none."""
    from tunerflow.client.data import labeled_docs
    from tunerflow.data.csv_options import CSVOptions
    from tunerflow.search.documents import SearchDoc
    from tunerflow.serving.documents import resolve_label

    if isinstance(data, (str, Path)):  # a CSV (text,label rows: an index holds texts, not pairs) or JSONL file
        for doc in labeled_docs(data, CSVOptions(is_labeled=True)):
            yield SearchDoc(id=doc.id, text=doc.text, label=doc.label)
        return
    for position, item in enumerate(data):
        if isinstance(item, str):
            yield SearchDoc(id=f"item-{position}", text=item)
        elif hasattr(item, "text"):  # a docarray document
            tags = dict(getattr(item, "tags", None) or {})
            label = resolve_label(getattr(item, "label", None), tags)
            yield SearchDoc(id=str(item.id), text=item.text, label=label, tags=tags)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            label = None if item[1] is None else str(item[1])
            yield SearchDoc(id=f"item-{position}", text=item[0], label=label)
        else:
            raise DataError(f"item {position} is {type(item).__name__}; give documents, texts, (text, label) or a file")


def _matches(doc) -> list[SearchMatch]:
    """The matches of one answered query (over HTTP, jina's client leaves nested matches as dicts)."""
    matches = [m if isinstance(m, dict) else m.dict() for m in (doc.matches or [])]
    scores = list(doc.scores or [m.get("score") for m in matches])
    return [
        SearchMatch(
            id=str(m["id"]), score=float(s), text=m.get("text"), label=m.get("label"), tags=dict(m.get("tags") or {})
        )
        for m, s in zip(matches, scores, strict=True)
    ]


def _batches(docs: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _progress_bar(show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(desc="indexing", unit=" docs", file=sys.stderr)
