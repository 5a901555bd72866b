"""Continuous batching of concurrent ``/encode`` requests: what arrives while the model computes goes
in its next call.

jina's own dynamic batching seals a batch when its timer fires (``timeout`` ms after the first request),
not when the model is free: with 16 clients sending 1-4 texts each, it merged 1.36 requests per model
call (bench/RESULTS.md, "Load on AMX"), so each call paid the model's fixed cost for ~3 texts. Here one
worker runs the model, one call at a time, in one thread of its own; a request that arrives while it
computes waits, and the next call takes every waiting request with the same options at once. A lone
request waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class _Waiting:
    key: tuple
    embed: Embed
    texts: list[str]
    answer: asyncio.Future = field(repr=False)


class ContinuousBatcher:
    """Merges concurrent calls with equal keys into one call of their embedding function.

    Use :meth:`embed` from the event loop: it returns the rows of the caller's texts, in order, or raises
    what the merged call raised (every request of that call gets the error).

    Attributes:
        calls: model calls made (with :attr:`requests`, how well requests were merged).
        requests: requests answered.
    """

    def __init__(self) -> None:
        self._waiting: list[_Waiting] = []
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunerflow-encode")
        self.calls = 0
        self.requests = 0

    async def embed(self, key: tuple, embed: Embed, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` computed by ``embed``, merged with the waiting calls of the same ``key``
        (the same model and options: ``embed`` of the first of them runs the merged call)."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(key, embed, list(texts), loop.create_future())
        self._waiting.append(waiting)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return await waiting.answer

    def stats(self) -> dict:
        return {"kind": "continuous", "calls": self.calls, "requests": self.requests}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            key = self._waiting[0].key
            group = [w for w in self._waiting if w.key == key]
            self._waiting = [w for w in self._waiting if w.key != key]
            texts = [text for waiting in group for text in waiting.texts]
            try:
                rows = await loop.run_in_executor(self._pool, group[0].embed, texts)
            except Exception as error:  # every request of the call hears it; the worker goes on
                for waiting in group:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(error)
                continue
            finally:
                self.calls += 1
            start = 0
            for waiting in group:
                if not waiting.answer.done():  # a caller that went away (cancelled) is skipped
                    waiting.answer.set_result(rows[start : start + len(waiting.texts)])
                start += len(waiting.texts)
                self.requests += 1
