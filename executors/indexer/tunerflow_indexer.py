"""IndexerExecutor: index texts with the served model and search them; SearchMerger merges shard answers.

No ``from __future__ import annotations`` here: jina reads the endpoint
annotations at run time to build document and parameter schemas.
"""

import threading
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from tunerflow.errors import DataError
from tunerflow.paths import under_home
from tunerflow.process_gc import freeze_startup_heap
from tunerflow.search import Embedder, ModelIdentity, Searcher
from tunerflow.search.ann import AnnOptions
from tunerflow.search.convert import ids_of_docs, merge_matches, query_groups, records_from_docs, set_matches
from tunerflow.search.documents import SearchDoc
from tunerflow.search.parameters import DEFAULT_LIMIT, SearchParameters, WriteParameters
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.internal import GatewayOnly
from tunerflow.serving.served_model import ServedModel


def embedder_of(served: ServedModel) -> Embedder:
    """The served backend as the searcher's model: its source names it."""
    backend, source = served.current, served.source
    return Embedder(ModelIdentity(source, backend.dimension), backend.embed)


class IndexerExecutor(GatewayOnly, Executor):
    """Serves ``/index``, ``/update``, ``/delete``, ``/clear``, ``/search`` and ``/index/status``.

    (``/index/status``, not ``/status``: an executor endpoint named ``/status`` shadows the HTTP
    gateway's own ``GET /status``.) As shards, each keeps the ids that hash to it; every endpoint
    goes to all shards (``polling: ALL``) and :class:`SearchMerger` merges their answers.

    Args:
        model: the model to embed with until an artifact is published (name, directory, artifact).
        follow: an artifact root to follow (its ``LATEST``); on a new artifact the stored texts are
            re-embedded in the background and model and index swapped together.
        home: the index directory, under ``$TUNERFLOW_HOME`` when relative; shard k uses ``shard-k``.
        search_backend: ``exact`` (default), ``hnsw`` or ``ivf`` (faiss).
        dtype: vector storage, ``float32`` or ``float16``.
        backend, device, batch_size, max_length, threads, poll_interval: as the encoder's.
    """

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        follow: Optional[str] = None,
        home: str = "search",
        search_backend: str = "exact",
        dtype: str = "float32",
        backend: str = "torch",
        device: str = "cpu",
        batch_size: int = 32,
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
        poll_interval: float = 2.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.served = ServedModel(
            model,
            follow=under_home(follow) if follow else None,
            poll_interval=poll_interval,
            backend=backend,
            device=device,
            batch_size=batch_size,
            max_length=max_length,
            threads=threads,
        )
        shard = int(getattr(self.runtime_args, "shard_id", 0) or 0)
        shards = int(getattr(self.runtime_args, "shards", 1) or 1)
        self._embedded = self.served.current  # the backend whose vectors the index holds (or is rebuilding to)
        self.searcher = Searcher(
            under_home(home) / f"shard-{shard}",
            embedder_of(self.served),
            backend=search_backend,
            dtype=dtype,
            shard=shard,
            shards=shards,
            ann_options=AnnOptions(),
        )
        self._stop = threading.Event()
        self.poll_interval = float(poll_interval)
        if self.served.follow is not None:
            self.served.start_following()
            threading.Thread(target=self._watch, name="tunerflow-index-watch", daemon=True).start()
        freeze_startup_heap()  # imports, model and index loaded: later full collections skip them (process_gc)

    @requests(on="/index")
    def index(self, docs: DocList[SearchDoc], parameters: WriteParameters, **kwargs) -> DocList[SearchDoc]:
        """Store new documents (text; optional id, label, tags); an id already stored is refused."""
        return self._write(docs, "indexed", lambda: self.searcher.index(records_from_docs(docs)))

    @requests(on="/update")
    def update(self, docs: DocList[SearchDoc], parameters: WriteParameters, **kwargs) -> DocList[SearchDoc]:
        """Replace documents by id (keeping their place in index order); add those not stored yet."""
        return self._write(docs, "updated", lambda: self.searcher.update(records_from_docs(docs)))

    @requests(on="/delete")
    def delete(self, docs: DocList[SearchDoc], parameters: WriteParameters, **kwargs) -> DocList[SearchDoc]:
        """Remove documents by id; an unknown id refuses the request and deletes nothing."""
        return self._write(docs, "deleted", lambda: self.searcher.delete(ids_of_docs(docs)))

    @requests(on="/clear")
    def clear(self, docs: DocList[SearchDoc], parameters: WriteParameters, **kwargs) -> DocList[SearchDoc]:
        """Remove every document (the model stays)."""
        return self._write(docs, "cleared", self.searcher.clear)

    @requests(on="/search")
    def search(self, docs: DocList[SearchDoc], parameters: SearchParameters, **kwargs) -> DocList[SearchDoc]:
        """Set ``matches`` and ``scores`` on each query (a text, or an embedding with ``model``)."""
        try:
            return self._search(docs, parameters)
        except DataError as error:
            if self.searcher.shards == 1:
                raise
            del docs[:]  # as one of several shards: the merger raises it (jina drops a failed shard's error)
            docs.append(SearchDoc(id=f"shard-{self.searcher.shard}", tags={"error": str(error)}))
            return docs

    def _search(self, docs: DocList[SearchDoc], parameters: SearchParameters) -> DocList[SearchDoc]:
        text_rows, texts, vector_rows, vectors = query_groups(docs)
        count = self.searcher.status()["count"]
        if self.searcher.shards == 1:
            limit = checked_limit(parameters.limit, count)
        else:  # the merger checks the limit against all shards together
            limit = parameters.limit or DEFAULT_LIMIT
        if texts:
            answers = self.searcher.search_texts(texts, limit, parameters.filter)
            for row, matches in zip(text_rows, answers, strict=True):
                set_matches(docs[row], matches)
        if vectors is not None:
            answers = self.searcher.search_vectors(vectors, parameters.model, limit, parameters.filter)
            for row, matches in zip(vector_rows, answers, strict=True):
                set_matches(docs[row], matches)
        for doc in docs:
            doc.searched = count
        return docs

    def passthrough(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """Leave documents untouched; flows/train.yml maps the default endpoint here.

        Typed as the encoder's documents: jina requires the previous executor's ``/default`` output
        schema to equal this ``/default`` input schema (tuner and encoder answers pass through).
        """
        return None

    @requests(on="/index/status")
    async def status(self, docs: DocList[SearchDoc], **kwargs) -> DocList[SearchDoc]:
        """Count, dimension, the model of the vectors, backend (ANN recall), rebuild progress, served model."""
        return self._report(docs)

    def _write(self, docs: DocList[SearchDoc], what: str, action) -> dict:
        """Run a write; as one of several shards, report a refusal to the merger instead of failing alone.

        (jina's head drops a failed shard's answer, error included: the merger could only say that one
        shard failed, not why.)
        """
        try:
            return self._report(docs, **{what: action()})
        except DataError as error:
            if self.searcher.shards == 1:
                raise
            return self._report(docs, error=str(error))

    def _report(self, docs: DocList[SearchDoc], **done) -> dict:
        """The answer of every endpoint but /search; as a shard, also a document the merger reads."""
        report = {**done, **self.searcher.status(), "served": self.served.source}
        del docs[:]  # answer with counts, not an echo of what was sent
        if self.searcher.shards > 1:
            docs.append(SearchDoc(id=f"shard-{self.searcher.shard}", tags=report))
        return report

    def _watch(self) -> None:
        """Start a rebuild when the served model changed and none is running (retried each interval)."""
        while not self._stop.wait(self.poll_interval):
            progress = self.searcher.rebuild_progress
            if self.served.current is not self._embedded and (progress is None or progress.state != "running"):
                self._embedded = self.served.current
                self.searcher.rebuild(embedder_of(self.served))

    def describe(self) -> dict:
        return self.searcher.status()

    def close(self) -> None:
        self._stop.set()
        self.served.stop()
        self.searcher.close()
        super().close()


def checked_limit(limit: Optional[int], count: int) -> int:
    """The explicit limit (refused when larger than the index), else the default capped at the index size."""
    if count == 0:
        raise DataError("the index is empty: /index documents before searching")
    if limit is not None and limit > count:
        raise DataError(f"limit {limit} is larger than the index ({count} documents): ask for at most {count}")
    return limit or min(DEFAULT_LIMIT, count)


class SearchMerger(GatewayOnly, Executor):
    """Runs after the shards (``uses_after``): one answer from all of theirs.

    Like the shards it answers only requests that came through the gateway (its port is its own).

    ``/search``: every shard's matches of a query, best score first, ties in index order, the
    limit kept. The other endpoints: the shards' reports summed (count) and listed (``shards``).
    """

    @requests(on="/search")
    def merge_search(
        self, docs: DocList[SearchDoc], parameters: dict, docs_matrix=None, **kwargs
    ) -> DocList[SearchDoc]:
        asked = SearchParameters(**parameters)  # a refused parameter fails every shard: name it here
        answers = docs_matrix or []
        errors = sorted({doc.tags["error"] for shard_docs in answers for doc in shard_docs if "error" in doc.tags})
        if errors:
            raise DataError("; ".join(errors))
        if not answers or any(doc.searched is None for shard_docs in answers for doc in shard_docs):
            raise DataError("a shard did not answer this search: see the shards' logs")
        total = sum(shard_docs[0].searched for shard_docs in answers if len(shard_docs))
        limit = checked_limit(asked.limit, total)
        return DocList[SearchDoc](merge_matches(answers, limit, total))

    def passthrough(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """As the shards' (``uses_requests: {/default: passthrough}`` applies to the merger too)."""
        return None

    @requests(on=["/index", "/update", "/delete", "/clear", "/index/status"])
    def merge_reports(self, docs: DocList[SearchDoc], docs_matrix=None, **kwargs) -> DocList[SearchDoc]:
        reports = sorted((doc.tags for shard_docs in docs_matrix or [] for doc in shard_docs), key=lambda r: r["shard"])
        expected = int(reports[0]["shards"]) if reports else 0
        if not reports or len(reports) != expected:
            raise DataError(f"{len(reports)} of {expected or 'the'} shards answered: check the shards' logs")
        refused = [f"shard {int(r['shard'])}: {r['error']}" for r in reports if r.get("error")]
        if refused and len(refused) < len(reports):
            refused.append("(the other shards applied their share; /update makes a retry safe)")
        if refused:
            raise DataError("; ".join(refused))
        summed = {
            key: int(sum(r.get(key, 0) for r in reports))
            for key in ("count", "indexed", "updated", "deleted")
            if key in reports[0]
        }
        del docs[:]
        shared = {key: reports[0][key] for key in ("model", "dimension", "backend", "dtype", "served")}
        return {**shared, **summed, "shards": reports}
