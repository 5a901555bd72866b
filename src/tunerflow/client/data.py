"""Turn what a user passes as data into labelled documents, lazily (data sets larger than memory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunerflow.data.loaders import read_records
from tunerflow.data.records import make_record
from tunerflow.errors import DataError


def is_file_path(data: Any) -> bool:
    return isinstance(data, (str, Path)) and Path(data).expanduser().is_file()


def labeled_docs(data: Any) -> Iterator:
    """``LabeledText`` documents from a DocList, ``(text, label)`` pairs, or a CSV / JSONL path.

    Each entry is checked as it is read; a bad one raises DataError naming it.
    """
    from tunerflow.serving.documents import LabeledText, resolve_label

    if is_file_path(data):
        for record in read_records(Path(data).expanduser()):
            yield LabeledText(id=record.id, text=record.text, label=record.label)
        return
    if isinstance(data, (str, Path)):
        raise DataError(f"no data file at {data}")
    for index, item in enumerate(data):
        if hasattr(item, "text"):  # a docarray document
            label = resolve_label(getattr(item, "label", None), getattr(item, "tags", None))
            record = make_record(item.text, label, item.id, f"document {index} (id {item.id})")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            record = make_record(item[0], item[1], f"item-{index}", f"item {index}")
        else:
            raise DataError(f"item {index} is {type(item).__name__}; give documents, (text, label) pairs or a file")
        yield LabeledText(id=record.id, text=record.text, label=record.label)
