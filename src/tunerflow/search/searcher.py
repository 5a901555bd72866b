"""The searcher: one model and the index its vectors fill, held and swapped as one pair.

Layout of ``<root>/``: ``ACTIVE`` (one line: the store directory in use,
replaced atomically) and the store directories ``store-<n>/``.

:meth:`Searcher.rebuild` re-embeds every stored text with a new model into a
new store in a background thread while queries are answered from the old pair;
writes that arrive meanwhile go to the old store and are replayed into the new
one before model and store are swapped together.
"""

from __future__ import annotations

import logging
import shutil
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunerflow.errors import ConfigError, DataError
from tunerflow.search.ann import AnnIndex, AnnOptions
from tunerflow.search.records import (
    Match,
    ModelIdentity,
    SearchBackend,
    SearchRecord,
    VectorDType,
    check_filter,
    unit_rows,
)
from tunerflow.search.store import VectorStore

log = logging.getLogger(__name__)
ACTIVE = "ACTIVE"
_REBUILD_BATCH = 256
# order = request number * span + position in the request: below 2**53, so exact as a float (protobuf's number).
_REQUEST_SPAN = 1 << 24


@dataclass(frozen=True)
class Embedder:
    """A model's embed function and identity; the searcher never mixes vectors of two of them."""

    identity: ModelIdentity
    embed: Callable[[list[str]], np.ndarray]


@dataclass
class _Pair:
    embedder: Embedder
    store: VectorStore
    ann: AnnIndex | None


@dataclass
class RebuildProgress:
    """What :meth:`Searcher.status` reports about a rebuild."""

    model: str
    total: int
    done: int = 0
    state: str = "running"  # running | done | failed
    error: str | None = None
    pending: list[tuple[str, list, int]] = field(default_factory=list, repr=False)


def shard_of(doc_id: str, shards: int) -> int:
    """The shard that stores ``doc_id``: a stable hash, the same in every process."""
    return zlib.crc32(doc_id.encode()) % shards


class Searcher:
    """Index and search texts with one model; persistent under ``root``.

    Args:
        root: the searcher's directory (e.g. ``$TUNERFLOW_HOME/search/shard-0``).
        embedder: the model that embeds documents and queries.
        backend: exact (default) or an ANN backend.
        dtype: storage precision of new stores.
        shard, shards: this searcher keeps only ids with ``shard_of(id, shards) == shard``.
        ann_options: options of the ANN backend.
    """

    def __init__(
        self,
        root: str | Path,
        embedder: Embedder,
        backend: SearchBackend = SearchBackend.EXACT,
        dtype: VectorDType = VectorDType.FLOAT32,
        shard: int = 0,
        shards: int = 1,
        ann_options: AnnOptions | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.backend, self.dtype = SearchBackend(backend), VectorDType(dtype)
        self.shard, self.shards = int(shard), int(shards)
        self.ann_options = ann_options
        self._write_lock = threading.RLock()
        self.rebuild_progress: RebuildProgress | None = None
        self._thread: threading.Thread | None = None
        active = self.root / ACTIVE
        name = active.read_text().strip() if active.is_file() else None
        if name and (self.root / name / "STATE.json").is_file():
            store = VectorStore(self.root / name)
        else:
            name = "store-0"
            shutil.rmtree(self.root / name, ignore_errors=True)
            store = VectorStore(self.root / name, embedder.identity, self.dtype)
            _write_text_atomic(active, name)
        for stale in self.root.iterdir():  # a rebuild cut short by a crash
            if stale.is_dir() and stale.name != name:
                shutil.rmtree(stale)
        self._pair = _Pair(embedder, store, self._new_ann())
        if store.identity != embedder.identity:
            # The stored vectors are another model's, and that model is not loaded: re-embed before serving.
            log.warning(
                "%s holds vectors of %s; re-embedding with %s",
                store.directory,
                store.identity.name,
                embedder.identity.name,
            )
            self.rebuild(embedder, background=False)

    # -- writes ---------------------------------------------------------------------------------------------
    def index(self, records: Sequence[SearchRecord]) -> int:
        """Store new documents (this shard's share); returns how many this shard stored."""
        return self._write("add", records)

    def update(self, records: Sequence[SearchRecord]) -> int:
        """Replace documents with these ids, add the others (this shard's share)."""
        return self._write("upsert", records)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (this shard's share); an unknown id refuses the request."""
        return self._write("delete", [doc_id for doc_id in ids if shard_of(doc_id, self.shards) == self.shard])

    def clear(self) -> int:
        return self._write("clear", [])

    def _write(self, op: str, items: list, pair: _Pair | None = None, request: int | None = None) -> int:
        with self._write_lock:
            pair = pair or self._pair
            store = pair.store
            if request is None:  # a new request: every shard counts it, so orders agree across shards
                request = store.next_request
                if op in ("add", "upsert"):
                    if len(items) >= _REQUEST_SPAN:
                        raise DataError(f"{len(items)} documents in one request: send fewer than {_REQUEST_SPAN}")
                    items = [_copy(r) for r in items]
                    for position, record in enumerate(items):
                        record.order = request * _REQUEST_SPAN + position  # index order: the tie-break of equal scores
                    items = [r for r in items if shard_of(r.id, self.shards) == self.shard]
            if op in ("add", "upsert") and items:
                vectors = pair.embedder.embed([r.text for r in items])
                getattr(store, op)(items, vectors, request)
            elif op == "delete" and items:
                store.delete(items, request)
            elif op == "clear":
                store.clear(request)
            else:
                store.tick(request)
            progress = self.rebuild_progress
            if pair is self._pair and progress is not None and progress.state == "running":
                progress.pending.append((op, [_copy(i) for i in items], request))
            return len(items) if op != "clear" else 0

    # -- search ---------------------------------------------------------------------------------------------
    def search_texts(self, texts: list[str], limit: int, where: dict | None = None) -> list[list[Match]]:
        """The best ``limit`` matches of each text, embedded with the model that made the index."""
        pair = self._pair  # one consistent model + index for the whole request, even if a swap happens now
        return self._search(pair, pair.embedder.embed(texts), limit, where)

    def search_vectors(
        self, vectors: np.ndarray, model: str | None, limit: int, where: dict | None = None
    ) -> list[list[Match]]:
        """Search with query embeddings made elsewhere; ``model`` must name the model of the index."""
        pair = self._pair
        identity = pair.store.identity
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != identity.dimension:
            raise DataError(
                f"query embeddings have shape {vectors.shape}; this index holds {identity.dimension}-dimensional "
                f"vectors of {identity.name}: send texts, or embeddings of that model"
            )
        if model != identity.name:
            raise DataError(
                f"query embeddings come from model {model!r}, the index from {identity.name!r}: vectors of two "
                "models are not comparable; send texts, or embeddings of the index's model (parameter 'model')"
            )
        return self._search(pair, vectors, limit, where)

    def _search(self, pair: _Pair, queries: np.ndarray, limit: int, where: dict | None) -> list[list[Match]]:
        where = check_filter(where)
        with pair.store.lock:
            if len(pair.store) == 0 and self.shards == 1:
                raise DataError("the index is empty: /index documents before searching")
            if pair.ann is None or where:
                return pair.store.index.search(queries, limit, where)  # filters search exactly
            return self._ann_search(pair, queries, limit)

    def _ann_search(self, pair: _Pair, queries: np.ndarray, limit: int) -> list[list[Match]]:
        index = pair.store.index
        if len(index) == 0:
            return [[] for _ in queries]
        pair.ann.ensure(index)
        scores, rows = pair.ann.search(unit_rows(queries), limit)
        return [
            [Match(index.records[r], float(s)) for s, r in zip(srow, rrow, strict=True) if r >= 0]
            for srow, rrow in zip(scores, rows, strict=True)
        ]

    # -- model swap -----------------------------------------------------------------------------------------
    @property
    def identity(self) -> ModelIdentity:
        return self._pair.store.identity

    def rebuild(self, embedder: Embedder, background: bool = True) -> RebuildProgress:
        """Re-embed every stored text with ``embedder`` into a new store, then swap model and store together."""
        with self._write_lock:
            if self.rebuild_progress is not None and self.rebuild_progress.state == "running":
                raise ConfigError(f"a rebuild for {self.rebuild_progress.model} is already running")
            old = self._pair.store
            records = [_copy(r) for r in old.index.records]
            progress = RebuildProgress(model=embedder.identity.name, total=len(records))
            self.rebuild_progress = progress
            number = int(old.directory.name.rsplit("-", 1)[1]) + 1
            target = self.root / f"store-{number}"
            shutil.rmtree(target, ignore_errors=True)
            store = VectorStore(target, embedder.identity, self.dtype, compact_bytes=1 << 62)
        work = lambda: self._rebuild(progress, embedder, store, records, old.next_request)  # noqa: E731
        if not background:
            work()
            return progress
        self._thread = threading.Thread(target=work, name="tunerflow-rebuild", daemon=True)
        self._thread.start()
        return progress

    def _rebuild(self, progress: RebuildProgress, embedder: Embedder, store: VectorStore, records, request) -> None:
        try:
            for start in range(0, len(records), _REBUILD_BATCH):
                batch = records[start : start + _REBUILD_BATCH]
                store.add(batch, embedder.embed([r.text for r in batch]), max(request - 1, 0))
                progress.done += len(batch)
            if request:
                store.tick(request - 1)  # the new store counts requests on from where the old one was
            with self._write_lock:  # writes wait while the last ones are replayed and the pair is swapped
                new = _Pair(embedder, store, self._new_ann())
                for op, items, number in progress.pending:
                    self._write(op, items, new, number)
                store.compact_bytes = self._pair.store.compact_bytes
                store.compact()
                _write_text_atomic(self.root / ACTIVE, store.directory.name)
                old, self._pair = self._pair, new
                progress.state, progress.pending = "done", []
            old.store.close()
            shutil.rmtree(old.store.directory, ignore_errors=True)
            log.info("now searching with %s (%d documents re-embedded)", embedder.identity.name, progress.total)
        except Exception as error:  # the old pair keeps serving; status reports why
            log.exception("rebuild for %s failed", embedder.identity.name)
            progress.state, progress.error, progress.pending = "failed", str(error), []
            store.close()
            shutil.rmtree(store.directory, ignore_errors=True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background rebuild ends (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict:
        pair, progress = self._pair, self.rebuild_progress
        return {
            "count": len(pair.store),
            "dimension": pair.store.identity.dimension,
            "model": pair.store.identity.name,
            "backend": self.backend.value,
            "dtype": pair.store.index.dtype.value,
            "ann": pair.ann.status() if pair.ann else None,
            "shard": self.shard,
            "shards": self.shards,
            "rebuild": None
            if progress is None
            else {
                "model": progress.model,
                "done": progress.done,
                "total": progress.total,
                "state": progress.state,
                "error": progress.error,
            },
        }

    def close(self) -> None:
        self.wait(timeout=5)
        self._pair.store.close()

    def _new_ann(self) -> AnnIndex | None:
        return None if self.backend is SearchBackend.EXACT else AnnIndex(self.backend, self.ann_options)


def _copy(item):
    return (
        SearchRecord(item.id, item.text, item.label, dict(item.tags), item.order)
        if isinstance(item, SearchRecord)
        else item
    )


def _write_text_atomic(path: Path, text: str) -> None:
    import os

    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
