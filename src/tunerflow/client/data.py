"""Turn what a user passes as data into labelled documents, lazily (data sets larger than memory).

What two columns mean (``is_labeled``):

- a CSV file: ``csv_options.is_labeled`` decides, as in the reference tool; without ``csv_options``,
  a first row ``text,label`` marks ``text,label`` rows and anything else is read as the reference tool
  reads it by default: ``query,document`` pairs (a header ``query,document`` is skipped).
- a Python list of 2-tuples: ``(text, label)`` as tunerflow has always read them, unless
  ``csv_options`` is given: then its ``is_labeled`` decides (``CSVOptions()``: pairs).
- documents (any docarray document with a ``text``): ``label`` or ``tags['finetuner_label']``.
- JSONL: ``text`` and ``label`` on each line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunerflow.data.csv_options import CSVOptions
from tunerflow.data.loaders import LABELED_HEADER, csv_header, pairs_to_records, read_records
from tunerflow.data.records import make_record
from tunerflow.errors import DataError


def is_file_path(data: Any) -> bool:
    return isinstance(data, (str, Path)) and Path(data).expanduser().is_file()


def _is_csv(path: Path) -> bool:
    return ".csv" in path.suffixes


def effective_csv_options(data: Any, csv_options: CSVOptions | None) -> CSVOptions | None:
    """The options ``data`` is read with (see the module's docstring); None: not a CSV file nor a pair list."""
    if is_file_path(data):
        path = Path(data).expanduser()
        if not _is_csv(path):
            return None
        if csv_options is not None:
            return csv_options
        return CSVOptions(is_labeled=csv_header(path) == LABELED_HEADER)
    if isinstance(data, (list, tuple)) and csv_options is not None:
        return csv_options
    return None


def is_pair_data(data: Any, csv_options: CSVOptions | None) -> bool:
    """True when ``data`` will be read as ``(query, document)`` pairs."""
    options = effective_csv_options(data, csv_options)
    return options is not None and not options.is_labeled


def labeled_docs(data: Any, csv_options: CSVOptions | None = None) -> Iterator:
    """``LabeledText`` documents from documents, 2-tuples, or a CSV / JSONL path (see the module's docstring).

    Each entry is checked as it is read; a bad one raises DataError naming it.
    """
    from tunerflow.serving.documents import LabeledText, resolve_label

    options = effective_csv_options(data, csv_options)
    if is_file_path(data):
        for record in read_records(Path(data).expanduser(), options):
            yield LabeledText(id=record.id, text=record.text, label=record.label)
        return
    if isinstance(data, (str, Path)):
        raise DataError(f"no data file at {data}")
    pairs = options is not None and not options.is_labeled
    if pairs:
        records = pairs_to_records(_pairs(data))
    else:
        records = (_record(item, index, resolve_label) for index, item in enumerate(data))
    for record in records:
        yield LabeledText(id=record.id, text=record.text, label=record.label)


def _record(item: Any, index: int, resolve_label):
    if hasattr(item, "text"):  # any docarray document with a text field
        label = resolve_label(getattr(item, "label", None), getattr(item, "tags", None))
        return make_record(item.text, label, item.id, f"document {index} (id {item.id})")
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return make_record(item[0], item[1], f"item-{index}", f"item {index}")
    raise DataError(f"item {index} is {type(item).__name__}; give documents, (text, label) pairs or a file")


def _pairs(data: Any) -> Iterator[tuple[object, object, str, str]]:
    for index, item in enumerate(data):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise DataError(f"item {index} is {type(item).__name__}; with is_labeled false give (query, document) pairs")
        yield item[0], item[1], f"pair-{index}", f"item {index}"
