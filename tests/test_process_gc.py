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
    # other threads of this process may free frozen objects meanwhile (reference counting): the count only falls
    assert frozen >= len(before) and 0 < gc.get_freeze_count() <= frozen
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


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_swapped_out_backend_is_freed_without_the_cyclic_collector(unfrozen, tiny_model_dir, tmp_path, backend):
    """Frozen objects are never collected as cycles: the backend a swap replaces must hold no cycle,
    so that reference counting alone frees it (and its weights) once the last request lets go."""
    from tests.conftest import TEXTS
    from tunerflow.artifact import load_model
    from tunerflow.export import save_artifact
    from tunerflow.inference.factory import open_backend

    source = tiny_model_dir
    if backend != "torch":
        source = save_artifact(load_model(tiny_model_dir, max_length=32), tmp_path / "a", to_onnx=True)
    served = open_backend(str(source), backend)
    served.embed(TEXTS)
    freeze_startup_heap()
    gone = weakref.ref(served)
    gc.disable()
    try:
        del served
        assert gone() is None
    finally:
        gc.enable()
