"""Document schemas shared by the executors and the client."""

from __future__ import annotations

from typing import Any, Dict, Optional

from docarray.documents import TextDoc

LABEL_TAG = "finetuner_label"


class LabeledText(TextDoc):
    """A text with an optional label (training data) and an embedding (encoding).

    The label may also come in ``tags['finetuner_label']``, the reference
    tool's convention.
    """

    label: Optional[str] = None
    tags: Dict[str, Any] = {}

    def resolved_label(self) -> Optional[str]:
        """``label``, else ``tags['finetuner_label']``, as a string (None if neither)."""
        return resolve_label(self.label, self.tags)


def resolve_label(label: Any, tags: Optional[Dict[str, Any]]) -> Optional[str]:
    """``label``, else ``tags['finetuner_label']``, as a string (None if neither); for any document type."""
    if label is not None and str(label) != "":
        return str(label)
    value = tags.get(LABEL_TAG) if tags else None
    if value is None or str(value) == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # protobuf Struct turns ints into floats
    return str(value)
