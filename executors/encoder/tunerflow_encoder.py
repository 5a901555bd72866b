"""EncoderExecutor: embeds documents in place with a PyTorch or ONNX model.

No ``from __future__ import annotations`` here: jina reads the endpoint
annotations at run time to build document and parameter schemas.
"""

from typing import Optional

from docarray import DocList
from jina import Executor, requests

from tunerflow.api import texts_of_docs
from tunerflow.errors import DataError
from tunerflow.parent_watch import watch_parent
from tunerflow.paths import under_home
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.encoder_params import EncodeParameters
from tunerflow.serving.internal import GatewayOnly
from tunerflow.serving.served_model import ServedModel


class EncoderExecutor(GatewayOnly, Executor):
    """Serves ``/encode`` (also the default endpoint), ``/reload`` and ``/info``.

    Args:
        model: a model name, directory, artifact directory or ``.zip``.
        backend: ``torch``, ``onnx`` or ``onnx-int8``.
        dtype: ``float32`` or ``bfloat16`` (torch backend).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: texts per forward pass.
        max_length: truncation in tokens (default: the model's).
        threads: compute threads (default: the library's).
        follow: an artifact root to follow (its ``LATEST`` pointer); relative
            paths resolve against ``$TUNERFLOW_HOME`` (default ``./workspace``).
        poll_interval: seconds between checks of the followed root.
    """

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        backend: str = "torch",
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 32,
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
        follow: Optional[str] = None,
        poll_interval: float = 2.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        watch_parent()  # the Flow's main process killed: stop this process and the Flow's other parts
        self.served = ServedModel(
            model,
            follow=under_home(follow) if follow else None,
            poll_interval=poll_interval,
            backend=backend,
            dtype=dtype,
            device=device,
            batch_size=batch_size,
            max_length=max_length,
            threads=threads,
        )
        self.served.start_following()

    @requests(on="/encode")
    def encode(self, docs: DocList[LabeledText], parameters: EncodeParameters, **kwargs) -> DocList[LabeledText]:
        """Set ``embedding`` on every document from its ``text``."""
        if len(docs) == 0:
            raise DataError("empty request: send at least one document with a text")
        model = self.served.current  # one reference for the whole request, even if a swap happens
        embeddings = model.embed(texts_of_docs(docs), batch_size=parameters.batch_size, normalize=parameters.normalize)
        for doc, row in zip(docs, embeddings, strict=True):
            doc.embedding = row
        return docs

    @requests
    def default(self, docs: DocList[LabeledText], parameters: EncodeParameters, **kwargs) -> DocList[LabeledText]:
        """The default endpoint encodes, as ``/encode``."""
        return self.encode(docs, parameters)

    def passthrough(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """Leave documents untouched; train.yml maps the default endpoint here."""
        return None

    @requests(on="/reload")
    def reload(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """Load the newest followed artifact now; answers what is served."""
        return self.served.reload()

    @requests(on="/info")
    def info(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """What is served: model, backend, spec and, for int8, its cosine to fp32."""
        return self.served.info()

    def describe(self) -> dict:
        """Served model and backend settings (for logs and tests)."""
        current = self.served.current
        return {**self.served.info(), "dtype": getattr(getattr(current, "dtype", None), "value", "float32")}

    def close(self) -> None:
        self.served.stop()
        super().close()
