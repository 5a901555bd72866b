"""Read labelled texts from JSONL (``text``, ``label``) or the reference tool's CSV (``text,label``)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from tunerflow.data.records import Record, make_record
from tunerflow.errors import DataError


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def read_jsonl(path: str | Path) -> Iterator[Record]:
    """Records from a JSON-lines file (``.gz`` too); each line has ``text`` and ``label`` (``id`` optional)."""
    path = Path(path)
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where} is not JSON: {error}") from None
            if not isinstance(row, dict):
                raise DataError(f"{where} is not a JSON object")
            yield make_record(row.get("text"), row.get("label"), row.get("id", f"{path.stem}:{number}"), where)


def read_csv(path: str | Path) -> Iterator[Record]:
    """Records from a CSV of ``text,label`` rows without a header (the reference tool's format)."""
    path = Path(path)
    with _open_text(path) as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            where = f"{path.name} line {number}"
            if len(row) != 2:
                raise DataError(f"{where} has {len(row)} columns; expected text,label")
            yield make_record(row[0], row[1].strip(), f"{path.stem}:{number}", where)


def read_records(path: str | Path) -> Iterator[Record]:
    """Records from a ``.csv`` or ``.jsonl`` file (optionally ``.gz``), chosen by suffix."""
    path = Path(path)
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if not path.is_file():
        raise DataError(f"no data file at {path}")
    if kind == ".csv":
        return read_csv(path)
    if kind in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path)
    raise DataError(f"{path}: unknown data format {kind!r}; use .csv (text,label) or .jsonl (text, label)")
