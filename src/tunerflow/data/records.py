"""One labelled text, validated once where it enters."""

from __future__ import annotations

from dataclasses import dataclass

from tunerflow.errors import DataError


@dataclass(frozen=True)
class Record:
    """A text, its label, and an id (unique within its dataset)."""

    id: str
    text: str
    label: str


def make_record(text: object, label: object, doc_id: object, where: str) -> Record:
    """Build a Record or raise DataError saying ``where`` the bad entry is.

    Labels may be strings or integers (they are compared as strings); texts
    must be non-empty strings.
    """
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where} has no text")
    if label is None or isinstance(label, (bool, dict, list)) or str(label).strip() == "":
        raise DataError(f"{where} has no label (give `label`, or tags['finetuner_label'])")
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return Record(id=str(doc_id), text=text, label=str(label))
