"""EncoderExecutor: embeds documents in place with PyTorch, ONNX Runtime or OpenVINO.

No ``from __future__ import annotations`` here: jina reads the endpoint
annotations at run time to build document and parameter schemas.
"""

import asyncio
import functools
from typing import Optional

from docarray import DocList
from jina import Executor, requests
from jina.serve.runtimes.worker.batch_queue import BatchQueue

from tunerflow.api import texts_of_docs
from tunerflow.errors import DataError
from tunerflow.inference.base import DEFAULT_MAX_TOKENS
from tunerflow.parent_watch import watch_parent
from tunerflow.paths import under_home
from tunerflow.process_gc import freeze_startup_heap
from tunerflow.serving.batcher import ContinuousBatcher
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.encoder_params import EncodeParameters
from tunerflow.serving.internal import GatewayOnly
from tunerflow.serving.served_model import ServedModel

EMPTY_REQUEST = "empty request: send at least one document with a text"


def _refuse_empty_requests(push):
    """jina 3.33's dynamic batching (off by default here; config.yml can switch it on) never answers a
    request without documents (its flush task dies on an IndexError and the caller waits forever):
    answer such a request with our DataError at once."""

    async def checked_push(self, request, http=False):
        if len(request.docs) == 0:
            answer: asyncio.Queue = asyncio.Queue()
            answer.put_nowait(DataError(EMPTY_REQUEST))
            return answer
        return await push(self, request, http=http)

    checked_push.refuses_empty = True
    return checked_push


if not getattr(BatchQueue.push, "refuses_empty", False):  # loaded once per process, patched once
    BatchQueue.push = _refuse_empty_requests(BatchQueue.push)


class EncoderExecutor(GatewayOnly, Executor):
    """Serves ``/encode`` (also the default endpoint), ``/reload`` and ``/info``.

    ``/encode`` takes its parameters as a dict (checked against :class:`EncodeParameters` here and
    by :class:`GatewayOnly`), so that jina's own dynamic batching can still be switched on in
    config.yml (it refuses an endpoint whose parameters are a pydantic model); by default the encoder
    merges concurrent ``/encode`` requests itself (:class:`~tunerflow.serving.batcher.ContinuousBatcher`).

    Args:
        model: a model name, directory, artifact directory or ``.zip``.
        backend: ``torch``, ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8`` or ``auto`` (the
            fastest of them for this CPU that the artifact has and whose quality it recorded at
            publication, chosen again for each artifact followed; see :mod:`tunerflow.inference.auto`).
        dtype: ``float32``, ``bfloat16`` or ``auto`` (torch and openvino backends; ``auto``: bfloat16
            where the CPU has native bf16, see :mod:`tunerflow.inference.cpu`); with ``backend: auto``,
            ``float32`` or ``auto`` (auto chooses the precision too).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: at most this many texts per forward pass.
        max_tokens: at most this many padded tokens per forward pass (null: no token limit).
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
        max_tokens: Optional[int] = DEFAULT_MAX_TOKENS,
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
            max_tokens=max_tokens,
            max_length=max_length,
            threads=threads,
        )
        self.served.start_following()
        self._batcher = ContinuousBatcher()  # concurrent /encode requests: merged while the model computes
        freeze_startup_heap()  # imports and model loaded: later full collections skip them (process_gc)

    @requests(on="/encode")
    async def encode_requests(
        self, docs: DocList[LabeledText], parameters: Optional[dict] = None, **kwargs
    ) -> DocList[LabeledText]:
        """``/encode``: as :meth:`encode`, with the texts of concurrent requests that have the same options
        embedded in one model call (:class:`~tunerflow.serving.batcher.ContinuousBatcher`)."""
        options, model, texts = self._prepare(docs, parameters)
        embed = functools.partial(model.embed, batch_size=options.batch_size, normalize=options.normalize)
        rows = await self._batcher.embed((id(model), options.batch_size, options.normalize), embed, texts)
        docs.embedding = list(rows)  # column-wise: each document gets a view of its row, no copy
        return docs

    @requests
    async def default(
        self, docs: DocList[LabeledText], parameters: Optional[dict] = None, **kwargs
    ) -> DocList[LabeledText]:
        """The default endpoint encodes, as ``/encode``."""
        return await self.encode_requests(docs, parameters)

    def encode(self, docs: DocList[LabeledText], parameters: Optional[dict] = None) -> DocList[LabeledText]:
        """Set ``embedding`` on every document from its ``text`` (one request, in the caller's thread)."""
        options, model, texts = self._prepare(docs, parameters)
        docs.embedding = list(model.embed(texts, batch_size=options.batch_size, normalize=options.normalize))
        return docs

    def _prepare(self, docs: DocList[LabeledText], parameters: Optional[dict]):
        """The request's options, the model it runs on (one reference, even if a swap happens) and its texts;
        a request without documents, or a document without a text, is a DataError naming it."""
        if len(docs) == 0:
            raise DataError(EMPTY_REQUEST)
        options = parameters if isinstance(parameters, EncodeParameters) else EncodeParameters(**(parameters or {}))
        texts = docs.text  # one column read; texts_of_docs only to name a document without text
        if not all(isinstance(text, str) for text in texts):
            texts_of_docs(docs)
        return options, self.served.current, texts

    def passthrough(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """Leave documents untouched; train.yml maps the default endpoint here."""
        return None

    @requests(on="/reload")
    def reload(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """Load the newest followed artifact now; answers what is served."""
        return self.served.reload()

    @requests(on="/info")
    def info(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """What is served and how: model, backend, dtype, the library's runtime settings, batching (per
        forward pass and across requests), the CPU's features, spec, for int8 its cosine to fp32 and,
        with ``backend: auto``, what auto chose and why (``auto``)."""
        info = self.served.info()
        jina_batching = (getattr(self, "dynamic_batching", None) or {}).get("/encode")
        dynamic = {**self._batcher.stats(), "jina": dict(jina_batching) if jina_batching else None}
        info["batching"] = {**info["batching"], "dynamic": dynamic}
        return info

    def describe(self) -> dict:
        """Served model and backend settings (for logs and tests)."""
        return self.info(DocList[LabeledText]())

    def close(self) -> None:
        self._batcher.close()
        self.served.stop()
        super().close()
