"""Server processes freeze their start-up heap: later collections skip it, and still free new cycles."""

from __future__ import annotations

import gc
import weakref

import pytest

from tunerflow.process_gc import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other = self


@pytest.fixture
def unfrozen():
    """Each test starts and ends with nothing frozen in this (pytest's) process."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_at_the_call_are_frozen_and_new_cycles_are_still_collected(unfrozen):
    before = [_Node() for _ in range(100)]
    frozen = freeze_startup_heap()
    assert frozen >= len(before) and gc.get_freeze_count() == frozen
    tracked = {id(obj) for obj in gc.get_objects()}  # the collector's generations; the frozen are not in any
    assert not any(id(node) in tracked for node in before)

    late = _Node()
    assert id(late) in {id(obj) for obj in gc.get_objects()}
    gone = weakref.ref(late)
    del late
    gc.collect()
    assert gone() is None  # a cycle made after the freeze is garbage-collected as before


def test_the_encoder_freezes_once_set_up(unfrozen, tiny_model_dir):
    pytest.importorskip("jina")
    from tunerflow_encoder import EncoderExecutor

    executor = EncoderExecutor(model=str(tiny_model_dir), batch_size=4)
    try:
        assert gc.get_freeze_count() > 0
        assert id(executor.served) not in {id(obj) for obj in gc.get_objects()}
    finally:
        executor.close()
