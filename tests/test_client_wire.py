"""The client reads ``/encode`` answers from their protobuf: rows go by document id, nothing is dropped."""

from __future__ import annotations

import numpy as np
import pytest
from docarray import DocList
from jina.types.request.data import DataRequest

from tunerflow.client.connection import RemoteError, embeddings_from_response
from tunerflow.serving.documents import LabeledText


def _answer(docs: DocList, as_bytes: bool = False) -> DataRequest:
    """An answer as the client receives it: serialised, then parsed back without docarray."""
    request = DataRequest()
    request.document_array_cls = DocList[LabeledText]
    request.data.docs = docs
    raw = request.proto.SerializeToString()
    answer = DataRequest(raw)
    if as_bytes:
        proto = answer.proto
        proto.data.docs_bytes = proto.data.docs.SerializeToString()  # the other wire form jina may use
    return answer


@pytest.mark.parametrize("as_bytes", [False, True])
def test_embeddings_come_back_by_id_whatever_the_order(as_bytes):
    vectors = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    order = [3, 0, 4, 1, 2]  # the answer's documents out of order
    docs = DocList[LabeledText]([LabeledText(id=str(i), text=f"t{i}", embedding=vectors[i]) for i in order])
    ids, block = embeddings_from_response(_answer(docs, as_bytes))
    assert ids.tolist() == order
    np.testing.assert_array_equal(block, vectors[order])
    assert block.dtype == np.float32


def test_a_document_without_embedding_is_an_error_naming_it():
    docs = DocList[LabeledText]([LabeledText(id="0", text="a", embedding=np.ones(4, np.float32)), LabeledText(id="1")])
    with pytest.raises(RemoteError, match="document 1 without an embedding"):
        embeddings_from_response(_answer(docs))
