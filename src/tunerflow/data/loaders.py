"""Read labelled texts from JSONL (``text``, ``label``) or CSV: ``text,label`` rows, or query-document pairs.

Pairs become labelled texts as the reference tool makes them: the two texts of a row share a label;
a text already seen gives the other text its label (a query with several matching documents is one
label), and a row whose two texts are both known adds nothing.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from tunerflow.data.csv_options import CSVOptions
from tunerflow.data.records import Record, make_record
from tunerflow.errors import DataError


def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return path.open("r", encoding=encoding, newline="")


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


LABELED_HEADER = ("text", "label")
PAIRS_HEADER = ("query", "document")


def read_csv(path: str | Path, options: CSVOptions | None = None) -> Iterator[Record]:
    """Records from a two-column CSV: ``text,label`` rows (``options`` None or ``is_labeled``), else pairs.

    A first row that is exactly the header ``text,label`` or ``query,document`` is skipped.
    """
    path = Path(path)
    options = options or CSVOptions(is_labeled=True)
    rows = _rows(path, options)
    if options.is_labeled:
        yield from (make_record(a, b.strip(), f"{path.stem}:{n}", f"{path.name} line {n}") for n, a, b in rows)
    else:
        yield from pairs_to_records(((a, b, f"{path.stem}:{n}", f"{path.name} line {n}") for n, a, b in rows))


def csv_header(path: str | Path, encoding: str = "utf-8") -> tuple[str, ...] | None:
    """The first row of ``path`` when it is one of the known headers (``text,label``, ``query,document``)."""
    with _open_text(Path(path), encoding) as handle:
        first = next(csv.reader(handle), None)
    first = tuple(cell.strip().lower() for cell in first or ())
    return first if first in (LABELED_HEADER, PAIRS_HEADER) else None


def _rows(path: Path, options: CSVOptions) -> Iterator[tuple[int, str, str]]:
    sampler = random.Random(0) if options.sampling_rate is not None else None
    kept = 0
    with _open_text(path, options.encoding) as handle:
        dialect, extra = options.dialect, {}
        if dialect == "auto":  # excel's quoting, the delimiter sniffed (the Sniffer misjudges quoting)
            start = handle.read(4096)
            handle.seek(0)
            dialect = "excel"
            try:
                extra = {"delimiter": csv.Sniffer().sniff(start, delimiters=",;\t|").delimiter}
            except csv.Error:
                pass  # one column, or too little text to tell: excel's comma
        for number, row in enumerate(csv.reader(handle, dialect, **extra), start=1):
            if not row or (number == 1 and tuple(c.strip().lower() for c in row) in (LABELED_HEADER, PAIRS_HEADER)):
                continue
            if len(row) != 2:
                wanted = "text,label" if options.is_labeled else "query,document"
                raise DataError(f"{path.name} line {number} has {len(row)} columns; expected {wanted}")
            if sampler is not None and sampler.random() >= options.sampling_rate:
                continue
            yield number, row[0], row[1]
            kept += 1
            if options.size is not None and kept >= options.size:
                return


def pairs_to_records(pairs: Iterable[tuple[object, object, str, str]]) -> Iterator[Record]:
    """Labelled records from ``(query, document, id, where)`` pairs (see the module's docstring)."""
    labels: dict[str, str] = {}
    made = 0
    for query, document, pair_id, where in pairs:
        for text, part in ((query, "query"), (document, "document")):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where} has no {part} text")
        if query in labels and document in labels:
            continue
        label = labels.get(query) or labels.get(document)
        if label is None:
            label, made = f"pair-{made}", made + 1
        for text, suffix in ((query, "q"), (document, "d")):
            if text not in labels:
                labels[text] = label
                yield make_record(text, label, f"{pair_id}:{suffix}", where)


def read_records(path: str | Path, csv_options: CSVOptions | None = None) -> Iterator[Record]:
    """Records from a ``.csv`` (read with ``csv_options``) or ``.jsonl`` file (optionally ``.gz``), by suffix."""
    path = Path(path)
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if not path.is_file():
        raise DataError(f"no data file at {path}")
    if kind == ".csv":
        return read_csv(path, csv_options)
    if kind in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path)
    raise DataError(f"{path}: unknown data format {kind!r}; use .csv (text,label) or .jsonl (text, label)")
