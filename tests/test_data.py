"""Loaders, the append-only store (crash recovery) and label-balanced batches."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tunerflow.data import DatasetStore, LabelBalancedBatches, make_record, read_csv, read_jsonl, read_records
from tunerflow.data.sampler import HardBatches, label_neighbours
from tunerflow.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CSV = ROOT / "data/examples/text-text_example.csv"


def test_reference_csv_loads():
    records = list(read_csv(EXAMPLE_CSV))
    assert len(records) == 2000
    assert len({r.label for r in records}) == 1008
    assert records[0].text.startswith("Why in India") and records[0].label == "123279"


def test_jsonl_and_gzip(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(
            json.dumps({"text": "a", "label": 1}) + "\n\n" + json.dumps({"text": "b", "label": "x", "id": "7"})
        )
    records = list(read_records(path))
    assert [(r.text, r.label, r.id) for r in records] == [("a", "1", "d.jsonl:1"), ("b", "x", "7")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a"}\n', "line 1 has no label"),
        ('{"text": "a", "label": 1}\n{"label": 2}\n', "line 2 has no text"),
        ('{"text": "", "label": 2}\n', "line 1 has no text"),
        ("not json\n", "line 1 is not JSON"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        list(read_jsonl(path))


def test_csv_errors(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("fine,1\nthree,columns,here\n")
    with pytest.raises(DataError, match="line 2 has 3 columns"):
        list(read_csv(path))
    with pytest.raises(DataError, match="no data file"):
        read_records(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="unknown data format"):
        read_records(path.with_suffix(".txt").write_text("x") and path.with_suffix(".txt"))


def test_record_rules():
    assert make_record("t", 3.0, "i", "x").label == "3"
    for label in (None, "", " ", [1], True):
        with pytest.raises(DataError, match="has no label"):
            make_record("t", label, "i", "document 4")


def _records(n, labels=5, prefix="t"):
    return [make_record(f"text {i}", i % labels, f"{prefix}{i}", "x") for i in range(n)]


def test_store_appends_and_survives_reopen(tmp_path):
    store = DatasetStore(tmp_path)
    assert store.append("train", _records(7))["documents"] == 7
    summary = store.append("train", _records(5, prefix="u"))
    assert summary == {**summary, "documents": 12, "labels": 5, "labels_with_pairs": 5}
    reopened = DatasetStore(tmp_path).get("train")
    assert len(reopened) == 12
    assert [r.id for r in reopened.read([11, 0])] == ["u4", "t0"]
    assert reopened.label_counts().tolist() == [3, 3, 2, 2, 2]


def test_half_written_append_leaves_no_trace(tmp_path):
    store = DatasetStore(tmp_path)
    store.append("train", _records(4))
    directory = tmp_path / "train"
    # A crash after the data files were written but before meta.json was replaced:
    with (directory / "texts.jsonl").open("ab") as handle:
        handle.write(b'{"id": "lost", "text": "half')
    with (directory / "labels.i32").open("ab") as handle:
        handle.write(b"\x01\x00")
    reopened = DatasetStore(tmp_path).get("train")
    assert len(reopened) == 4
    reopened.append(_records(2, prefix="new"))
    assert [r.id for r in DatasetStore(tmp_path).get("train").read_all()] == ["t0", "t1", "t2", "t3", "new0", "new1"]


def test_store_names(tmp_path):
    store = DatasetStore(tmp_path)
    for bad in ("../escape", "a/b", ".hidden", "", "x" * 65):
        with pytest.raises(ConfigError, match="invalid dataset name"):
            store.append(bad, _records(1))
    with pytest.raises(DataError, match="no dataset named 'missing'"):
        store.get("missing")


def test_batches_hold_m_per_label_and_cover_the_data():
    labels = np.repeat(np.arange(40), [1] + [2] * 19 + [7] * 20)
    sampler = LabelBalancedBatches(labels, batch_size=16, m=4, seed=3)
    batches = sampler.epoch(0)
    assert sampler.unused == 1
    seen = np.concatenate(batches)
    assert len(seen) == len(set(seen.tolist()))
    assert all(len(b) <= 16 for b in batches)
    for batch in batches:
        counts = Counter(labels[batch].tolist())
        assert len(counts) >= 2 and all(2 <= c <= 4 for c in counts.values())
    assert len(seen) >= 0.9 * sampler.usable


def test_batches_are_deterministic_per_seed_and_epoch():
    labels = np.repeat(np.arange(30), 4)
    one = LabelBalancedBatches(labels, 16, 4, seed=1)
    two = LabelBalancedBatches(labels, 16, 4, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(one.epoch(2), two.epoch(2), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(one.epoch(0), one.epoch(1), strict=False))
    other = LabelBalancedBatches(labels, 16, 4, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(one.epoch(0), other.epoch(0), strict=False))


def test_sampler_refusals():
    with pytest.raises(ConfigError, match="at least 2 \\* num_items_per_class = 8"):
        LabelBalancedBatches(np.repeat(np.arange(5), 2), batch_size=6, m=4, seed=0)
    with pytest.raises(DataError, match="0 label\\(s\\) with two or more texts"):
        LabelBalancedBatches(np.arange(10), batch_size=8, m=2, seed=0)


def test_whole_clusters_keeps_every_text_of_a_chosen_label():
    from tunerflow.data import whole_clusters

    rows = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c"), ("b2", "b"), ("c2", "c"), ("c3", "c")]
    assert whole_clusters(rows, 3, label=lambda r: r[1]) == [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")]
    shuffled = whole_clusters(rows, 3, label=lambda r: r[1], seed=1)
    assert shuffled == whole_clusters(rows, 3, label=lambda r: r[1], seed=1)  # the same for a seed
    labels = [r[1] for r in shuffled]
    assert all(labels.count(x) == [r[1] for r in rows].count(x) for x in set(labels)) and len(shuffled) >= 3
    assert len(whole_clusters(rows, 100, label=lambda r: r[1], seed=1)) == len(rows)


def test_a_label_column_read_as_pairs_is_warned_about(tmp_path):
    import warnings

    from tunerflow.client.data import labeled_docs
    from tunerflow.data import CSVOptions

    example = ROOT / "data/examples/text-text_example.csv"  # text,label rows without a header
    with pytest.warns(UserWarning, match="second column looks like labels"):
        list(labeled_docs(example))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(labeled_docs(example, CSVOptions(is_labeled=True)))) == 2000
        pairs = tmp_path / "pairs.csv"
        pairs.write_text(
            "".join(f"how do i learn topic {i} ?,what is the best way to learn topic {i}\n" for i in range(30))
        )
        assert len(list(labeled_docs(pairs))) == 60  # real pairs: no warning


def _clustered_labels(seed=0, labels=60, dim=16, topics=6):
    """Labels whose centroids sit around a few topics: neighbours share a topic."""
    rng = np.random.default_rng(seed)
    topic_of = np.arange(labels) % topics
    centres = rng.normal(size=(topics, dim))
    centroids = centres[topic_of] + 0.3 * rng.normal(size=(labels, dim))
    counts = rng.integers(2, 12, size=labels)
    return np.repeat(np.arange(labels), counts), centroids, topic_of


def _mean_similarity(batches, labels, centroids):
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    values = []
    for batch in batches:
        present = np.unique(labels[batch])
        similar = unit[present] @ unit[present].T
        values.append(similar[~np.eye(len(present), dtype=bool)].mean())
    return float(np.mean(values))


def test_hard_batches_cover_what_label_balanced_batches_cover_and_gather_close_labels():
    labels, centroids, _ = _clustered_labels()
    usable = np.bincount(labels) >= 2
    neighbours = label_neighbours(centroids, usable, count=16)
    hard = HardBatches(labels, batch_size=24, m=4, seed=5, neighbours=neighbours)
    plain = LabelBalancedBatches(labels, batch_size=24, m=4, seed=5)
    for epoch in range(3):
        batches = hard.epoch(epoch)
        seen = np.concatenate(batches).tolist()
        assert len(seen) == len(set(seen))  # each text at most once per epoch
        chunked = {int(p) for chunk in plain._chunks(np.random.default_rng([5, epoch]))[0] for p in chunk}
        assert set(seen) <= chunked and len(set(seen)) >= len(chunked) - 12  # at most the last batch's leftovers
        assert len(seen) >= len(np.concatenate(plain.epoch(epoch))) - 4  # as many texts as label-balanced batches
        for batch in batches:
            counts = Counter(labels[batch].tolist())
            assert len(batch) <= 24 and len(counts) >= 2 and all(2 <= c <= 4 for c in counts.values())
        assert (
            _mean_similarity(batches, labels, centroids) > _mean_similarity(plain.epoch(epoch), labels, centroids) + 0.2
        )


def test_hard_batches_are_reproducible_for_a_seed_and_epoch_and_differ_by_epoch():
    labels, centroids, _ = _clustered_labels(seed=1)
    neighbours = label_neighbours(centroids, np.bincount(labels) >= 2, count=8)
    one = HardBatches(labels, 16, 4, seed=1, neighbours=neighbours)
    again = HardBatches(labels, 16, 4, seed=1, neighbours=label_neighbours(centroids, np.bincount(labels) >= 2, 8))
    assert all(np.array_equal(a, b) for a, b in zip(one.epoch(2), again.epoch(2), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(one.epoch(0), one.epoch(1), strict=False))


def test_label_neighbours_rank_by_cosine_and_skip_unusable_labels():
    centroids = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.95, 0.05], [-1.0, 0.0]])
    usable = np.array([True, True, True, False, True])
    near = label_neighbours(centroids, usable, count=2)
    assert near[0].tolist() == [1, 2] and near[2].tolist() == [1, 0]
    assert near[3].tolist() == [-1, -1]  # an unusable label has no neighbours and is nobody's
