"""Append-only datasets on disk, larger than RAM, safe across crashes.

Layout of ``<root>/<name>/``::

    texts.jsonl      one JSON object per record ({"id", "text", "label"}), append-only
    offsets.i64      byte offset of each record in texts.jsonl
    labels.i32       label number of each record
    label_names.txt  one JSON string per line: the label of each number
    meta.json        the committed sizes; written last, atomically

An append writes and fsyncs the data files, then replaces ``meta.json``: that
is the commit. On open, bytes beyond the committed sizes (a crash mid-append)
are cut off, so every acknowledged append survives and a half-written one
leaves no trace.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tunerflow.data.records import Record
from tunerflow.errors import ConfigError, DataError, DatasetNotFoundError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FILES = ("texts.jsonl", "offsets.i64", "labels.i32", "label_names.txt")


def check_name(name: str, what: str = "dataset") -> str:
    """Names become directory names: letters, digits, ``_ . -``; no path characters."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(
            f"invalid {what} name {name!r}: use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    return name


class Dataset:
    """One stored dataset. Appends are serialised by a lock; reads see committed records only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = directory.name
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self.meta = self._read_meta()
        self._recover()
        names_file = directory / "label_names.txt"
        self.label_names: list[str] = [json.loads(line) for line in names_file.read_text().splitlines()]
        self._label_ids = {label: number for number, label in enumerate(self.label_names)}

    def __len__(self) -> int:
        return int(self.meta["count"])

    def _read_meta(self) -> dict:
        path = self.directory / "meta.json"
        if path.is_file():
            return json.loads(path.read_text())
        now = _now()
        return {"count": 0, "sizes": dict.fromkeys(_FILES, 0), "created_at": now, "updated_at": now}

    def _recover(self) -> None:
        for name in _FILES:
            path = self.directory / name
            committed = int(self.meta["sizes"].get(name, 0))
            if not path.exists():
                path.touch()
            if path.stat().st_size != committed:
                with path.open("r+b") as handle:
                    handle.truncate(committed)

    def append(self, records: Iterable[Record]) -> dict:
        """Store ``records`` (already validated) durably; return the dataset's counts."""
        records = list(records)
        _check_unique_ids(records)
        with self._lock:
            new_labels = []
            label_numbers = np.empty(len(records), dtype=np.int32)
            offsets = np.empty(len(records), dtype=np.int64)
            position = int(self.meta["sizes"]["texts.jsonl"])
            lines = []
            for row, record in enumerate(records):
                number = self._label_ids.get(record.label)
                if number is None:
                    number = self._label_ids[record.label] = len(self.label_names)
                    self.label_names.append(record.label)
                    new_labels.append(record.label)
                label_numbers[row] = number
                line = (json.dumps({"id": record.id, "text": record.text, "label": record.label}) + "\n").encode()
                offsets[row] = position
                position += len(line)
                lines.append(line)
            chunks = {
                "texts.jsonl": b"".join(lines),
                "offsets.i64": offsets.tobytes(),
                "labels.i32": label_numbers.tobytes(),
                "label_names.txt": "".join(json.dumps(label) + "\n" for label in new_labels).encode(),
            }
            sizes = dict(self.meta["sizes"])
            for name, data in chunks.items():
                with (self.directory / name).open("ab") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                sizes[name] += len(data)
            meta = {**self.meta, "count": len(self) + len(records), "sizes": sizes, "updated_at": _now()}
            _write_json_atomic(self.directory / "meta.json", meta)
            self.meta = meta
        return self.summary()

    def labels(self) -> np.ndarray:
        """Label number of every committed record (4 bytes per record in memory)."""
        return np.fromfile(self.directory / "labels.i32", dtype=np.int32, count=len(self))

    def label_counts(self) -> np.ndarray:
        return np.bincount(self.labels(), minlength=len(self.label_names))

    def read(self, positions: Iterable[int]) -> list[Record]:
        """The records at ``positions`` (any order), read from disk."""
        offsets = np.memmap(self.directory / "offsets.i64", dtype=np.int64, mode="r", shape=(len(self),))
        records = []
        with (self.directory / "texts.jsonl").open("rb") as handle:
            for position in positions:
                handle.seek(int(offsets[int(position)]))
                row = json.loads(handle.readline())
                records.append(Record(id=row["id"], text=row["text"], label=row["label"]))
        return records

    def read_all(self) -> list[Record]:
        return self.read(range(len(self)))

    def summary(self) -> dict:
        counts = self.label_counts()
        return {
            "dataset": self.name,
            "documents": len(self),
            "labels": int((counts > 0).sum()),
            "labels_with_pairs": int((counts >= 2).sum()),
            "updated_at": self.meta["updated_at"],
        }


class DatasetStore:
    """The datasets under one root directory, opened once each."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, Dataset] = {}
        self._lock = threading.Lock()

    def get(self, name: str, create: bool = False) -> Dataset:
        check_name(name)
        with self._lock:
            if name not in self._open:
                directory = self.root / name
                if not create and not (directory / "meta.json").is_file():
                    known = ", ".join(self.names()) or "none yet"
                    raise DatasetNotFoundError(f"no dataset named {name!r} (stored: {known})")
                self._open[name] = Dataset(directory)
            return self._open[name]

    def append(self, name: str, records: Iterable[Record]) -> dict:
        return self.get(name, create=True).append(records)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").is_file())


def _check_unique_ids(records: list[Record]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise DataError(f"document id {record.id!r} appears twice in one append; give every document its own id")
        seen.add(record.id)


def _write_json_atomic(path: Path, data: dict) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
