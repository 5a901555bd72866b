"""Crash safety of the search store and the model swap: acknowledged writes survive kill -9, swaps fail no query."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.search_helpers import hashed_embedder, labelled_set
from tunerflow.search import ModelIdentity, Searcher, SearchRecord, VectorStore

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from tests.search_helpers import hashed_embedder
from tunerflow.search import SearchRecord, Searcher
searcher = Searcher(sys.argv[1], hashed_embedder("m"))
searcher._pair.store.compact_bytes = 20000  # compact now and then, so a kill may land in a compaction
batch = 0
while True:
    ids = [f"b{batch}-{i}" for i in range(25)]
    searcher.index([SearchRecord(doc_id, f"text of {doc_id} w{batch % 7}") for doc_id in ids])
    print(" ".join(ids), flush=True)  # acknowledged: index() returned
    batch += 1
"""


def test_kill_9_loses_no_acknowledged_document(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "home"), str(ROOT), str(ROOT / "src")],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = []
    try:
        while len(acknowledged) < 40 * 25:
            line = process.stdout.readline()
            assert line, "the writer died before it was killed"
            acknowledged.extend(line.split())
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    searcher = Searcher(tmp_path / "home", hashed_embedder("m"))
    stored = {record.id for record in searcher._pair.store.index.records}
    assert set(acknowledged) <= stored
    assert len(stored) == len({r.id for r in searcher._pair.store.index.records})  # no id twice
    assert searcher._pair.store.generation >= 1  # compactions happened while writing
    top = searcher.search_texts([f"text of {acknowledged[-1]}"], 1)[0][0]
    assert top.record.id == acknowledged[-1]


def _store_with_two_writes(directory: Path) -> VectorStore:
    store = VectorStore(directory, ModelIdentity("m", 4))
    store.add([SearchRecord("a", "first")], np.ones((1, 4)), 0)
    store.add([SearchRecord("b", "second")], np.arange(4.0)[None], 1)
    return store


@pytest.mark.parametrize("cut", [1, 7, 20, -3])
def test_a_torn_tail_is_cut_and_what_came_before_survives(tmp_path, cut):
    store = _store_with_two_writes(tmp_path)
    store.add([SearchRecord("c", "third")], np.ones((1, 4)), 2)
    store.close()
    journal = store.journal.path
    data = journal.read_bytes()
    last_frame = data.rfind(b"TFJ1")
    torn = data[: last_frame + cut] if cut > 0 else data[:cut]  # the last write cut short at some byte
    journal.write_bytes(torn)
    reopened = VectorStore(tmp_path)
    assert [r.id for r in reopened.index.records] == ["a", "b"]
    reopened.add([SearchRecord("d", "after the crash")], np.ones((1, 4)), 3)
    reopened.close()
    assert [r.id for r in VectorStore(tmp_path).index.records] == ["a", "b", "d"]


def test_a_damaged_frame_is_not_replayed(tmp_path):
    store = _store_with_two_writes(tmp_path)
    store.close()
    data = bytearray(store.journal.path.read_bytes())
    data[-2] ^= 0xFF  # a flipped byte in the last frame's vectors: its checksum fails
    store.journal.path.write_bytes(bytes(data))
    assert [r.id for r in VectorStore(tmp_path).index.records] == ["a"]


def test_a_compaction_cut_short_leaves_the_old_generation(tmp_path):
    store = _store_with_two_writes(tmp_path)
    store.close()
    (tmp_path / ".snapshot-1.partial").mkdir()  # a crash while writing the next snapshot
    (tmp_path / ".snapshot-1.partial" / "vectors.npy").write_bytes(b"half")
    (tmp_path / "snapshot-1").mkdir()  # or after renaming it, before STATE.json named it
    reopened = VectorStore(tmp_path)
    assert [r.id for r in reopened.index.records] == ["a", "b"] and reopened.generation == 0
    assert not (tmp_path / "snapshot-1").exists()
    reopened.compact()
    reopened.add([SearchRecord("c", "third")], np.ones((1, 4)), 2)
    reopened.close()
    again = VectorStore(tmp_path)
    assert [r.id for r in again.index.records] == ["a", "b", "c"] and again.generation == 1


def test_queries_never_fail_during_a_rebuild_and_then_use_the_new_model(tmp_path):
    index, queries = labelled_set(count=300)
    old, new = hashed_embedder("old"), hashed_embedder("new", delay=0.3)  # the new model is slow: a long rebuild
    searcher = Searcher(tmp_path, old)
    searcher.index(index)
    failures, answered, stop = [], [], threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                answered.append(searcher.search_texts([queries[len(answered) % 30].text], 5)[0][0].record.id)
            except Exception as error:  # noqa: BLE001 (the test counts every failure)
                failures.append(error)

    asker = threading.Thread(target=ask)
    asker.start()
    progress = searcher.rebuild(new)
    searcher.index([SearchRecord("late", "indexed during the rebuild w1 w2")])
    searcher.delete(["d0"])
    assert searcher.status()["rebuild"]["state"] == "running"  # those writes came during the rebuild
    searcher.wait(timeout=120)
    stop.set()
    asker.join()
    assert progress.state == "done" and progress.done == progress.total == len(index)
    assert not failures and len(answered) > 10
    assert searcher.identity.name == "new" and searcher.status()["model"] == "new"
    ids = {r.id for r in searcher._pair.store.index.records}
    assert "late" in ids and "d0" not in ids and len(ids) == len(index)
    vector = new.embed([queries[0].text])
    expected = Searcher(tmp_path / "fresh", new)
    expected.index([r for r in index if r.id != "d0"] + [SearchRecord("late", "indexed during the rebuild w1 w2")])
    got = searcher.search_texts([queries[0].text], 5)[0]
    want = expected.search_vectors(vector, "new", 5)[0]
    assert [m.record.id for m in got] == [m.record.id for m in want]
    reopened = Searcher(tmp_path, new)  # the swap is on disk too
    assert reopened.identity.name == "new" and len(reopened._pair.store) == len(index)


def test_opening_with_another_model_re_embeds_before_serving(tmp_path):
    index, queries = labelled_set()
    Searcher(tmp_path, hashed_embedder("old")).index(index)
    searcher = Searcher(tmp_path, hashed_embedder("new"))
    assert searcher.identity.name == "new" and len(searcher._pair.store) == len(index)
    assert searcher.search_texts([index[0].text], 1)[0][0].score == pytest.approx(1.0, abs=1e-5)
