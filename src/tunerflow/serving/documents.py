"""Document schemas shared by the executors and the client."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from docarray.documents import TextDoc
from pydantic import validator

from tunerflow.errors import DataError
from tunerflow.serving.doc_proto import fast_from_protobuf, fast_to_protobuf

LABEL_TAG = "finetuner_label"


class LabeledText(TextDoc):
    """A text with an optional label (training data) and an embedding (encoding).

    The label may also come in ``tags['finetuner_label']``, the reference
    tool's convention. Labels are strings; a number is accepted when whole and
    becomes its digits (``7`` and ``7.0`` are both the label ``"7"``); a
    string is kept as given (``"7.0"`` stays ``"7.0"``).
    """

    label: Optional[str] = None
    tags: Dict[str, Any] = {}

    @validator("label", pre=True)
    def _label_as_text(cls, value: Any) -> Any:  # noqa: N805 (pydantic passes the class)
        return value if value is None else label_text(value)

    def resolved_label(self) -> Optional[str]:
        """``label``, else ``tags['finetuner_label']``, as a string (None if neither)."""
        return resolve_label(self.label, self.tags)

    def to_protobuf(self):  # noqa: ANN201 (docarray's DocProto)
        """docarray's message for this document; the common shapes skip its per-field dispatch (doc_proto.py)."""
        message = fast_to_protobuf(self.__dict__)
        return message if message is not None else super().to_protobuf()

    @classmethod
    def from_protobuf(cls, pb_msg):  # noqa: ANN001, ANN206 (docarray's DocProto)
        """The document docarray would rebuild from ``pb_msg``; the common shapes skip re-validation (doc_proto.py)."""
        doc = fast_from_protobuf(cls, pb_msg)
        return doc if doc is not None else super().from_protobuf(pb_msg)


def label_text(value: Any) -> str:
    """A label value as its string: strings as given, whole numbers as digits; anything else is refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"a label must be a string or a whole number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise DataError(f"a numeric label must be a whole number, got {value!r}")
        value = int(value)  # protobuf Struct turns ints into floats
    return str(value)


def resolve_label(label: Any, tags: Optional[Dict[str, Any]]) -> Optional[str]:
    """``label``, else ``tags['finetuner_label']``, as a string (None if neither); for any document type."""
    if label is not None and str(label) != "":
        return label_text(label)
    value = tags.get(LABEL_TAG) if tags else None
    if value is None or value == "":
        return None
    return label_text(value)
