"""LabeledText documents as JSON without pydantic's ``dict()`` of each one.

The REST gateway answers ``/encode`` with the documents as docarray's ``DocList.to_json`` writes them.
That calls pydantic's ``dict()`` on every document, which took 13.4 ms of the gateway's CPU for a 512-text
answer; writing the same values straight to orjson (numpy embeddings as float32 numbers, as docarray does)
takes 4.5 ms and gives the same bytes (bench/RESULTS.md, "HTTP answers"). Documents the way the encoder
answers them (an id, text, a numpy embedding, a string label, no url or bytes, tags empty) take the short
way; anything else returns None and the caller uses docarray's ``to_json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import numpy as np
import orjson
from docarray.typing.tensor.ndarray import NdArray

from tunerflow.serving.doc_proto import FIELDS


def fast_docs_json(docs: Iterable[Any]) -> Optional[bytes]:
    """The bytes ``DocList.to_json()`` would give for ``docs``, or None when one of them is off the short way."""
    rows = []
    for doc in docs:
        values = getattr(doc, "__dict__", None)
        if values is None or values.keys() != FIELDS:
            return None
        row = {}
        for name, value in values.items():  # the fields' order, as dict() keeps it
            if value is None or type(value) is str or (type(value) is dict and not value):
                row[name] = value
            elif name == "id" and isinstance(value, str):
                row[name] = str(value)
            elif name == "embedding" and isinstance(value, np.ndarray):
                row[name] = value.unwrap() if isinstance(value, NdArray) else value
            else:
                return None
        rows.append(row)
    return orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)
