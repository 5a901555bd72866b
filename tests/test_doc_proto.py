"""LabeledText's short protobuf conversion gives what docarray's own gives, and steps aside otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from docarray import DocList
from docarray.proto import DocListProto, DocProto

from tunerflow.serving.doc_proto import fast_from_protobuf, fast_to_protobuf
from tunerflow.serving.documents import LabeledText


def docarray_message(doc: LabeledText) -> DocProto:
    return super(LabeledText, doc).to_protobuf()


def docarray_doc(message: DocProto) -> LabeledText:
    return super(LabeledText, LabeledText).from_protobuf(message)


def common_docs() -> list:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    docs = DocList[LabeledText]([LabeledText(id=str(i), text=f"text {i}") for i in range(3)])
    docs.embedding = list(rows)  # as the encoder writes them: views of one matrix
    return [
        *docs,
        LabeledText(text="no embedding"),
        LabeledText(text="labelled", label="card"),
        LabeledText(text="whole-number label", label=7),
        LabeledText(text="", embedding=np.ones(2, dtype=np.float64)),
        LabeledText(text="plain array", embedding=np.zeros(3, dtype=np.float16)),
        LabeledText(),
    ]


@pytest.mark.parametrize("doc", common_docs(), ids=lambda doc: repr(doc.text))
def test_short_message_equals_docarray_message(doc):
    assert fast_to_protobuf(doc.__dict__) is not None, "this shape should take the short way"
    assert doc.to_protobuf() == docarray_message(doc)


def test_plain_numpy_embedding_is_written_as_docarray_writes_it():
    doc = LabeledText(text="a")
    doc.__dict__["embedding"] = np.arange(3, dtype=np.float32)  # an unvalidated plain array
    assert fast_to_protobuf(doc.__dict__) == docarray_message(doc)


@pytest.mark.parametrize("doc", common_docs(), ids=lambda doc: repr(doc.text))
def test_short_rebuild_equals_docarray_rebuild(doc):
    message = docarray_message(doc)
    fast, slow = fast_from_protobuf(LabeledText, message), docarray_doc(message)
    assert fast is not None, "this shape should take the short way"
    assert fast.__fields_set__ == slow.__fields_set__
    for name in LabeledText.__fields__:
        mine, theirs = getattr(fast, name), getattr(slow, name)
        assert type(mine) is type(theirs), name
        if isinstance(theirs, np.ndarray):
            assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
            assert np.array_equal(mine, theirs)
            assert mine.flags.writeable
        else:
            assert mine == theirs, name
    assert LabeledText.from_protobuf(message).id == slow.id


def test_a_plain_ndarray_node_becomes_an_embedding_as_validation_makes_it():
    doc = LabeledText(text="a")
    doc.__dict__["embedding"] = np.arange(3, dtype=np.float32)
    message = docarray_message(doc)
    assert message.data["embedding"].type == "ndarray"
    assert type(fast_from_protobuf(LabeledText, message).embedding) is type(docarray_doc(message).embedding)


@pytest.mark.parametrize(
    "doc",
    [
        LabeledText(text="tagged", tags={"finetuner_label": "x", "n": 2}),
        LabeledText(text="with url", url="https://example.com/a.txt"),
        LabeledText(text="torch", embedding=torch.ones(3)),
    ],
    ids=["tags", "url", "torch"],
)
def test_other_shapes_take_docarray_s_way_both_ways(doc):
    assert fast_to_protobuf(doc.__dict__) is None
    message = doc.to_protobuf()
    assert message == docarray_message(doc)
    assert fast_from_protobuf(LabeledText, message) is None
    rebuilt = LabeledText.from_protobuf(message)
    assert rebuilt.tags == docarray_doc(message).tags and rebuilt.url == doc.url


def test_numeric_label_from_another_client_is_still_validated():
    message = docarray_message(LabeledText(text="a"))
    message.data["label"].Clear()
    message.data["label"].float = 7.0  # protobuf Struct style
    assert fast_from_protobuf(LabeledText, message) is None
    assert LabeledText.from_protobuf(message).label == "7"


def test_unknown_field_is_left_to_docarray():
    message = docarray_message(LabeledText(text="a"))
    message.data["extra"].text = "x"
    assert fast_from_protobuf(LabeledText, message) is None
    assert LabeledText.from_protobuf(message).text == "a"


def test_doclist_round_trip_through_bytes_keeps_order_and_values():
    docs = DocList[LabeledText](
        [LabeledText(id=str(i), text=f"t{i}", embedding=np.full(4, i, dtype=np.float32)) for i in range(5)]
    )
    wire = docs.to_protobuf().SerializeToString()
    back = DocList[LabeledText].from_protobuf(DocListProto.FromString(wire))
    assert [doc.id for doc in back] == [str(i) for i in range(5)]
    assert np.array_equal(np.stack(back.embedding), np.stack(docs.embedding))
