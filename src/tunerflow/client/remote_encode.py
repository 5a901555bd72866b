"""Embed texts with a served encoder (``/encode``) over gRPC or HTTP."""

from __future__ import annotations

import numpy as np

from tunerflow.client.connection import Connection, RemoteError, max_request_docs


def remote_encode(texts: list[str], host: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Embeddings of ``texts`` from the Flow's encoder, in order."""
    from docarray import DocList
    from jina.excepts import BadServer

    from tunerflow.client.connection import _server_message
    from tunerflow.serving.documents import LabeledText

    connection = Connection(host)
    docs = DocList[LabeledText]([LabeledText(id=str(i), text=t) for i, t in enumerate(texts)])
    try:
        answer = connection.client.post(
            "/encode",
            inputs=docs,
            request_size=max_request_docs(connection.host, batch_size),
            return_type=DocList[LabeledText],
            target_executor="encoder$",
        )
    except BadServer as error:
        raise RemoteError(_server_message(error)) from None
    by_id = {doc.id: np.asarray(doc.embedding, dtype=np.float32) for doc in answer}
    return np.stack([by_id[str(i)] for i in range(len(texts))])
