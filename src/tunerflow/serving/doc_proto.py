"""LabeledText to and from protobuf without docarray's per-field dispatch.

docarray converts a document field by field through an ``isinstance`` chain
(``_type_to_protobuf``) and rebuilds one through pydantic validation of every
field. A served 512-text ``/encode`` request's conversions took 32 ms of CPU
that way and take 10 ms here on a 2-core Zen 5 (bench/doc_proto.py;
bench/RESULTS.md, "Streaming a job's requests"). Documents the way tunerflow's
client and encoder make them (plain text, an id, a numpy embedding, a string
label, no url or bytes, tags empty) take the short way here and give the same
message, or the same document, as docarray's own; anything else returns None
and the caller uses docarray's conversion.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type, TypeVar

import numpy as np
from docarray.proto import DocProto, NodeProto
from docarray.typing import ID
from docarray.typing.tensor.embedding.ndarray import NdArrayEmbedding
from docarray.typing.tensor.ndarray import NdArray

T = TypeVar("T")

FIELDS = frozenset({"id", "text", "url", "embedding", "bytes_", "label", "tags"})
_ARRAY_TYPES = {"ndarray", "ndarray_embedding"}  # what validation turns into an NdArrayEmbedding


def fast_to_protobuf(values: Dict[str, Any]) -> Optional[DocProto]:
    """The DocProto docarray would build from a document's ``__dict__``, or None off the short way."""
    if values.keys() != FIELDS:
        return None
    message = DocProto()
    data = message.data
    for name, value in values.items():
        if value is None:
            data[name].SetInParent()  # an empty node, as docarray writes None
        elif type(value) is str:
            data[name].text = value
        elif type(value) is ID:
            node = data[name]
            node.text = value
            node.type = ID._proto_type_name
        elif name == "embedding" and (kind := _array_type_name(value)) is not None:
            _write_array(data[name], value, kind)
        elif type(value) is dict and not value:
            data[name].dict.SetInParent()
        else:
            return None
    return message


def fast_from_protobuf(cls: Type[T], message: DocProto) -> Optional[T]:
    """The document docarray would rebuild from ``message``, or None off the short way.

    Only values whose validation is the identity (or a known conversion) are
    taken, so building the document without re-validating it is the same as
    validating it.
    """
    fields: Dict[str, Any] = {}
    for name, node in message.data.items():
        if name not in FIELDS:
            return None
        content = node.WhichOneof("content")
        kind = node.type if node.WhichOneof("docarray_type") is not None else None
        if content is None and kind is None:
            fields[name] = None
        elif name == "id" and content == "text" and kind == ID._proto_type_name:
            fields[name] = ID(node.text)
        elif name in ("text", "label") and content == "text" and kind is None:
            fields[name] = node.text
        elif name == "embedding" and content == "ndarray" and kind in _ARRAY_TYPES:
            array = _read_array(node)
            if array is None:
                return None
            fields[name] = array
        elif name == "tags" and content == "dict" and kind is None and not node.dict.data:
            fields[name] = {}
        else:
            return None
    return cls.construct(**fields)  # type: ignore[attr-defined]


def _array_type_name(value: Any) -> Optional[str]:
    """The type docarray writes a numpy array under (``ndarray``, ``ndarray_embedding``), None for anything else."""
    if type(value) is np.ndarray:
        return NdArray._proto_type_name  # docarray wraps a plain array as an NdArray
    if isinstance(value, NdArray) and value._proto_type_name in _ARRAY_TYPES:
        return value._proto_type_name
    return None


def _write_array(node: NodeProto, value: np.ndarray, kind: str) -> None:
    node.type = kind
    dense = node.ndarray.dense
    dense.buffer = value.tobytes()
    dense.shape.extend(value.shape)
    dense.dtype = value.dtype.str


def _read_array(node: NodeProto) -> Optional[NdArrayEmbedding]:
    dense = node.ndarray.dense
    if not dense.buffer:
        return None  # docarray's zeros-of-shape and error cases
    array = np.frombuffer(dense.buffer, dtype=np.dtype(dense.dtype)).reshape(tuple(dense.shape))
    return NdArrayEmbedding._docarray_from_native(array.copy())  # writable, as docarray's bytearray copy
