"""Keep a server process's start-up heap out of the cyclic garbage collector.

A Flow's gateway and executors import jina, docarray, torch and transformers and
load a model before they serve: hundreds of thousands of long-lived objects that
every full (generation 2) collection walks again and frees nothing of. Under the
load benchmark (16 clients) the gateway ran one every ~2 s at 130-170 ms each,
and the encoder now and then, each a stall that every request in flight waits
out, and the source of most of the p99 (bench/RESULTS.md, "Garbage-collector
pauses"). :func:`freeze_startup_heap`, called once a process is set up, moves
what is alive then into the permanent generation (``gc.freeze``), so later
collections walk only the objects made while serving; reference counting still
frees everything as before, and cycles made after the call are still collected.
The price is one full collection at start-up (~0.3 s a process).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then freeze every object alive now; returns how many objects are frozen in all.

    Call it at the end of a long-lived process's set-up (again after a large load, e.g. a new
    model, is harmless: what is frozen stays frozen, what is new joins it).
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("garbage collector: %d start-up objects frozen", frozen)
    return frozen
