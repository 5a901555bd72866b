"""The gateway's short JSON of LabeledText documents: the bytes docarray's ``to_json`` gives, or it steps aside."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import torch
from docarray import DocList

from tests.test_doc_proto import common_docs
from tunerflow.search.documents import SearchDoc
from tunerflow.serving.doc_json import fast_docs_json
from tunerflow.serving.documents import LabeledText


def test_the_encoder_s_documents_give_docarray_s_bytes():
    docs = common_docs()
    fast = fast_docs_json(docs)
    assert fast is not None, "these shapes should take the short way"
    assert fast.decode() == DocList[LabeledText](docs).to_json()
    embedded = orjson.loads(fast)[0]["embedding"]
    assert embedded == [0.0, 1.0, 2.0, 3.0]


def test_answered_documents_give_docarray_s_bytes():
    docs = DocList[LabeledText]([LabeledText(id=str(i), text=f"text {i}") for i in range(4)])
    docs.embedding = list(np.random.default_rng(0).standard_normal((4, 384)).astype(np.float32))
    answered = DocList[LabeledText].from_protobuf(docs.to_protobuf())  # as the gateway gets them
    assert fast_docs_json(answered).decode() == answered.to_json()
    assert fast_docs_json([]) == b"[]"


@pytest.mark.parametrize(
    "doc",
    [
        LabeledText(text="tagged", tags={"k": "v"}),
        LabeledText(text="with url", url="https://example.com/a.txt"),
        LabeledText(text="torch", embedding=torch.ones(3)),
        SearchDoc(text="a query"),
    ],
    ids=["tags", "url", "torch", "another type"],
)
def test_other_shapes_are_left_to_docarray(doc):
    assert fast_docs_json([LabeledText(text="plain"), doc]) is None
