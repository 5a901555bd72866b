"""The gateway's wait for a free prefetch slot (tunerflow.gateway.prefetch_wait): same requests, no spinning."""

from __future__ import annotations

import asyncio

from jina.serve.stream.helper import AsyncRequestsIterator

from tunerflow.gateway import prefetch_wait


class ReadCountingCounter(prefetch_wait.SignallingCounter):
    """Counts how often the in-progress count is read: jina's own wait reads it on every loop turn."""

    reads = 0

    @property
    def count(self) -> int:
        self.reads += 1
        return self._count

    @count.setter
    def count(self, value: int) -> None:
        prefetch_wait.SignallingCounter.count.fset(self, value)


def test_iterator_waits_for_a_slot_without_spinning_and_keeps_every_request():
    prefetch_wait.install()

    async def scenario():
        counter = ReadCountingCounter()
        iterator = AsyncRequestsIterator(
            iter(range(5)), request_counter=counter, prefetch=2, iterate_sync_in_thread=False
        )
        taken = []
        consumer_waits = asyncio.Event()

        async def consume():
            async for request in iterator:
                taken.append(request)
                counter.count += 1  # as jina's streamer does when it sends a request on
                if counter.count == 2:
                    consumer_waits.set()

        task = asyncio.create_task(consume())
        await consumer_waits.wait()
        reads_when_full = counter.reads
        for _ in range(200):  # the loop turns; a spinning wait would read the count on each turn
            await asyncio.sleep(0)
        spun = counter.reads - reads_when_full
        in_progress_at_most = counter.count
        while not task.done():  # answers come back one by one, each frees a slot
            counter.count -= 1
            for _ in range(5):
                await asyncio.sleep(0)
        await task
        return taken, spun, in_progress_at_most

    taken, spun, in_progress = asyncio.run(scenario())
    assert taken == [0, 1, 2, 3, 4]
    assert in_progress == 2  # the third request waited for a slot
    assert spun <= 2


def test_install_is_idempotent_and_the_streamer_counts_with_the_signalling_counter():
    import jina.serve.stream as jina_stream

    prefetch_wait.install()
    patched = AsyncRequestsIterator.__anext__
    prefetch_wait.install()
    assert AsyncRequestsIterator.__anext__ is patched
    assert jina_stream._RequestsCounter is prefetch_wait.SignallingCounter
