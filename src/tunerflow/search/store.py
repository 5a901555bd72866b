"""A persistent exact index under one directory: snapshot + journal, crash-safe.

Layout of ``<directory>/``::

    STATE.json            generation, model identity, dtype; replaced atomically
    snapshot-<g>/         records.jsonl + vectors.npy of generation g (absent for g = 0)
    journal-<g>.log       the writes since that snapshot (see journal.py)

Every write is appended to the journal and fsynced before it is acknowledged.
Opening loads the snapshot and replays the journal; a torn tail is cut off.
:meth:`VectorStore.compact` writes generation g+1 into a temporary directory,
renames it, starts an empty journal and only then replaces ``STATE.json``: a
crash at any step leaves either the old or the new generation, whole.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tunerflow.errors import ConfigError, DataError
from tunerflow.search.exact import ExactIndex
from tunerflow.search.journal import Journal
from tunerflow.search.records import ModelIdentity, SearchRecord, VectorDType, unit_rows

STATE = "STATE.json"
DEFAULT_COMPACT_BYTES = 256 << 20


class VectorStore:
    """An :class:`ExactIndex` kept on disk. Writes are serialised by a lock.

    Args:
        directory: where the store lives (created).
        identity: the model whose vectors go in; must equal the stored one when reopening.
        dtype: storage precision of a new store.
        compact_bytes: compact once the journal grows past this size (or past the vectors' size, if larger).
    """

    def __init__(
        self,
        directory: str | Path,
        identity: ModelIdentity | None = None,
        dtype: VectorDType = VectorDType.FLOAT32,
        compact_bytes: int = DEFAULT_COMPACT_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.compact_bytes = int(compact_bytes)
        self.lock = threading.RLock()
        state = _read_json(self.directory / STATE)
        if state is None:
            if identity is None:
                raise ConfigError(f"{self.directory} holds no index yet: give the model identity to create one")
            state = {"generation": 0, "model": identity.to_dict(), "dtype": VectorDType(dtype).value}
            _write_json_atomic(self.directory / STATE, state)
        self.identity = ModelIdentity.from_dict(state["model"])
        if identity is not None and identity != self.identity:
            raise ConfigError(
                f"{self.directory} holds vectors of {self.identity.name} ({self.identity.dimension} dims), "
                f"not of {identity.name} ({identity.dimension} dims): rebuild the index for the new model"
            )
        self.generation = int(state["generation"])
        self.index = ExactIndex(self.identity.dimension, VectorDType(state["dtype"]))
        self.next_request = 0
        self._remove_stale()
        self._load_snapshot()
        self.journal = Journal(self.directory / f"journal-{self.generation}.log")
        for header, data in self.journal.replay():
            self._apply(header, data)

    def __len__(self) -> int:
        return len(self.index)

    # -- writes: validate, journal (fsync), then apply in memory ------------------------------------------------
    def add(self, records: Sequence[SearchRecord], vectors: np.ndarray, request: int) -> None:
        """Store new documents; an id already stored (or twice in ``records``) is refused, nothing written."""
        with self.lock:
            ids = _unique_ids(records)
            taken = sorted({doc_id for doc_id in ids if doc_id in self.index})
            if taken:
                raise DataError(f"ids already indexed: {taken[:10]}; use /update to replace documents")
            self._write({"op": "add", "request": request, "records": [r.to_dict() for r in records]}, vectors)

    def upsert(self, records: Sequence[SearchRecord], vectors: np.ndarray, request: int) -> None:
        """Replace stored documents with the same ids (keeping their order) and add the others."""
        with self.lock:
            _unique_ids(records)
            self._write({"op": "upsert", "request": request, "records": [r.to_dict() for r in records]}, vectors)

    def delete(self, ids: Sequence[str], request: int) -> None:
        """Remove documents; any unknown id refuses the whole request, nothing deleted."""
        with self.lock:
            unknown = [doc_id for doc_id in ids if doc_id not in self.index]
            if unknown:
                raise DataError(f"unknown ids, nothing deleted: {unknown[:10]}")
            self._write({"op": "delete", "request": request, "ids": list(ids)})

    def clear(self, request: int) -> None:
        with self.lock:
            self._write({"op": "clear", "request": request})

    def tick(self, request: int) -> None:
        """Count a write request that brought this store nothing (another shard's share), as the others do."""
        with self.lock:
            self._write({"op": "tick", "request": request})

    def compact(self) -> None:
        """Write the current contents as a new snapshot generation and start an empty journal."""
        with self.lock:
            generation = self.generation + 1
            partial = self.directory / f".snapshot-{generation}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            _write_synced(partial / "records.jsonl", _records_bytes(self.index.records))
            with (partial / "vectors.npy").open("wb") as handle:
                np.save(handle, self.index.vectors)
                handle.flush()
                os.fsync(handle.fileno())
            partial.rename(self.directory / f"snapshot-{generation}")
            _write_json_atomic(self.directory / f"journal-{generation}.next", {"request": self.next_request})
            state = {**_read_json(self.directory / STATE), "generation": generation}
            _write_json_atomic(self.directory / STATE, state)  # the commit point
            self.journal.close()
            self.generation = generation
            self.journal = Journal(self.directory / f"journal-{generation}.log")
            self._remove_stale()

    def close(self) -> None:
        self.journal.close()

    def _write(self, header: dict, vectors: np.ndarray | None = None) -> None:
        if vectors is not None:
            vectors = self._stored_dtype(vectors)
            if len(vectors) != len(header["records"]):
                raise DataError(f"{len(header['records'])} documents but {len(vectors)} vectors")
        self.journal.append(header, vectors)
        self._apply(header, b"" if vectors is None else vectors)
        snapshot_bytes = self.index.vectors.nbytes  # grow the threshold with the store: amortised linear writes
        if self.journal.size > max(self.compact_bytes, snapshot_bytes):
            self.compact()

    def _apply(self, header: dict, data: bytes | np.ndarray) -> None:
        op = header["op"]
        self.next_request = max(self.next_request, int(header.get("request", -1)) + 1)
        if op in ("add", "upsert"):
            records = [SearchRecord.from_dict(r) for r in header["records"]]
            vectors = data if isinstance(data, np.ndarray) else self._vectors_from(data, len(records))
            old = np.array([r.id in self.index for r in records], dtype=bool)
            if old.any():
                self.index.replace([r for r, o in zip(records, old, strict=True) if o], vectors[old])
            if not old.all():
                self.index.add([r for r, o in zip(records, old, strict=True) if not o], vectors[~old])
        elif op == "delete":
            self.index.delete(header["ids"])
        elif op == "clear":
            self.index.clear()
        elif op != "tick":
            raise DataError(f"{self.journal.path}: unknown journal operation {op!r}")

    def _stored_dtype(self, vectors: np.ndarray) -> np.ndarray:
        vectors = unit_rows(vectors)
        if vectors.shape[1] != self.identity.dimension:
            raise DataError(
                f"vectors have {vectors.shape[1]} dimensions; this index holds {self.identity.dimension} "
                f"(model {self.identity.name})"
            )
        return vectors.astype(self.index.dtype.value, copy=False)

    def _vectors_from(self, data: bytes, count: int) -> np.ndarray:
        vectors = np.frombuffer(data, dtype=self.index.dtype.value)
        return vectors.reshape(count, self.identity.dimension)

    def _load_snapshot(self) -> None:
        folder = self.directory / f"snapshot-{self.generation}"
        if self.generation == 0:
            return
        lines = (folder / "records.jsonl").read_text().splitlines()
        records = [SearchRecord.from_dict(json.loads(line)) for line in lines]
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        if records:
            self.index.add(records, vectors)
        following = _read_json(self.directory / f"journal-{self.generation}.next") or {}
        self.next_request = int(following.get("request", 0))

    def _remove_stale(self) -> None:
        keep = {STATE, f"snapshot-{self.generation}", f"journal-{self.generation}.log"}
        keep.add(f"journal-{self.generation}.next")
        for path in self.directory.iterdir():
            if path.name not in keep:
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _unique_ids(records: Sequence[SearchRecord]) -> list[str]:
    ids = [record.id for record in records]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = sorted({doc_id for doc_id in ids if doc_id in seen or seen.add(doc_id)})
        raise DataError(f"ids repeated within one request: {twice[:10]}; send each id once")
    return ids


def _records_bytes(records: Sequence[SearchRecord]) -> bytes:
    return "".join(json.dumps(r.to_dict()) + "\n" for r in records).encode()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json_atomic(path: Path, data: dict) -> None:
    partial = path.with_name(f".{path.name}.partial")
    _write_synced(partial, json.dumps(data).encode())
    partial.replace(path)
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the rename itself must survive a crash
    finally:
        os.close(descriptor)
