"""A gateway waiting for a free prefetch slot sleeps, instead of spinning a core.

A client may cap the requests of one stream that the gateway handles at a time (jina's ``prefetch``,
sent as ``__prefetch__`` metadata; tunerflow's client sends its ``in_flight``). jina 3.33's gateway waits
for a slot with ``while count >= prefetch: await asyncio.sleep(0)`` (``AsyncRequestsIterator``): its event
loop never rests while the encoder computes, and on 2 cores that loop takes a core from the model. Measured
with 6 requests of 512 texts in one stream, 2 in flight: the gateway burnt 5.4 CPU seconds in 8.4 s and
served 330-360 texts/s, against 780-820 sent one request at a time (bench/RESULTS.md, issue 14).

:func:`install` (idempotent; the gateway calls it on import) makes the streamer's request counter signal
each answer and the iterator wait for that signal. The requests, their order and the cap are unchanged.
"""

from __future__ import annotations

import asyncio

import jina.serve.stream as jina_stream
from jina.serve.stream.helper import AsyncRequestsIterator, _RequestsCounter


class SignallingCounter(_RequestsCounter):
    """jina's count of a stream's requests in progress, which wakes :meth:`wait_below` when it falls."""

    def __init__(self) -> None:
        self._count = 0
        self._fell: asyncio.Event | None = None

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, value: int) -> None:
        fell = value < self._count
        self._count = value
        if fell and self._fell is not None:
            self._fell.set()

    async def wait_below(self, limit: int) -> None:
        """Return once fewer than ``limit`` requests are in progress."""
        while self._count >= limit:
            if self._fell is None:
                self._fell = asyncio.Event()
            self._fell.clear()
            await self._fell.wait()


def _sleeping_anext(original):
    async def __anext__(self):
        limit, counter = self._prefetch, self._request_counter
        if limit <= 0 or counter is None:
            return await original(self)
        self._prefetch = 0  # jina's own wait is skipped: the request is fetched, then the wait below
        try:
            request = await original(self)
        finally:
            self._prefetch = limit
        if isinstance(counter, SignallingCounter):
            await counter.wait_below(limit)
        else:  # a counter made elsewhere: poll, but let the loop rest between looks
            while counter.count >= limit:
                await asyncio.sleep(0.001)
        return request

    __anext__.sleeps = True
    return __anext__


def install() -> None:
    """Patch jina's request streamer in this process (once)."""
    if getattr(AsyncRequestsIterator.__anext__, "sleeps", False):
        return
    AsyncRequestsIterator.__anext__ = _sleeping_anext(AsyncRequestsIterator.__anext__)
    jina_stream._RequestsCounter = SignallingCounter  # the streamer makes its counters by this name
