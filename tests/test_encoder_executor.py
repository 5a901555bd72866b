"""EncoderExecutor called directly: endpoints, parameters, errors, following artifacts."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList

from tests.conftest import TEXTS, build_tiny_model
from tunerflow.api import get_model
from tunerflow.artifact import load_model, save_artifact
from tunerflow.artifact.publish import write_latest
from tunerflow.errors import DataError
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.encoder_params import EncodeParameters

pytest.importorskip("jina")

from tunerflow_encoder import EncoderExecutor  # noqa: E402  (tests/conftest.py puts it on sys.path)


def _docs(texts=TEXTS):
    return DocList[LabeledText]([LabeledText(text=t, id=f"d{i}") for i, t in enumerate(texts)])


def _matrix(docs):
    return np.stack([np.asarray(d.embedding) for d in docs])


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    executor = EncoderExecutor(model=str(tiny_model_dir), batch_size=4)
    yield executor
    executor.close()


def test_encode_fills_embeddings_in_place(encoder, tiny_model_dir):
    docs = _docs()
    out = encoder.encode(docs, EncodeParameters())
    assert [d.id for d in out] == [d.id for d in docs]
    np.testing.assert_allclose(_matrix(out), get_model(tiny_model_dir).embed(TEXTS), atol=1e-5)


def test_default_endpoint_encodes(encoder):
    out = asyncio.run(encoder.default(_docs(), EncodeParameters()))
    assert _matrix(out).shape == (len(TEXTS), 32)


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_rows(encoder):
    """The /encode endpoint merges requests that wait while the model computes (same options only)."""
    plans = [TEXTS[i % len(TEXTS) :] + TEXTS[: i % len(TEXTS)] for i in range(12)]
    options = [{} if i % 3 else {"normalize": True} for i in range(12)]

    async def all_at_once():
        docs = [_docs(texts) for texts in plans]
        return await asyncio.gather(*(encoder.encode_requests(d, o) for d, o in zip(docs, options, strict=True)))

    before = encoder._batcher.stats()
    answers = asyncio.run(all_at_once())
    after = encoder._batcher.stats()
    for texts, option, answer in zip(plans, options, answers, strict=True):
        expected = _matrix(encoder.encode(_docs(texts), option))
        np.testing.assert_allclose(_matrix(answer), expected, atol=1e-5)
    assert after["requests"] - before["requests"] == 12
    assert after["calls"] - before["calls"] < 12  # merged: fewer model calls than requests


def test_normalize_parameter(encoder):
    raw = _matrix(encoder.encode(_docs(), EncodeParameters(normalize=False)))
    unit = _matrix(encoder.encode(_docs(), EncodeParameters(normalize=True)))
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)


def test_batch_size_parameter(encoder, monkeypatch):
    calls = []
    model = encoder.served.current
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, mask: calls.append(len(ids)) or original(ids, mask))
    encoder.encode(_docs(), EncodeParameters())
    assert calls == [4, 4]
    calls.clear()
    encoder.encode(_docs(), EncodeParameters(batch_size=3))
    assert calls == [3, 3, 2]


def test_parameters_as_jina_passes_them_with_dynamic_batching(encoder, monkeypatch):
    """Batched /encode gets a plain dict (numbers as protobuf floats): same options, same checks."""
    calls = []
    model = encoder.served.current
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, mask: calls.append(len(ids)) or original(ids, mask))
    unit = _matrix(encoder.encode(_docs(), {"batch_size": 3.0, "normalize": True}))
    assert calls == [3, 3, 2]
    np.testing.assert_allclose(unit, _matrix(encoder.encode(_docs(), EncodeParameters(normalize=True))), atol=1e-6)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        encoder.encode(_docs(), {"batch_size": 2.5})
    with pytest.raises(ValidationError):
        encoder.encode(_docs(), {"bogus": 1})


def test_a_long_request_is_cut_by_tokens_and_keeps_its_order(tiny_model_dir):
    executor = EncoderExecutor(model=str(tiny_model_dir), batch_size=1000, max_tokens=16)
    try:
        texts = [" ".join(["cat"] * n) for n in (1, 9, 3, 14, 2, 6)] * 5
        calls = []
        model = executor.served.current
        original = model.forward
        model.forward = lambda ids, mask: calls.append(ids.shape) or original(ids, mask)
        out = executor.encode(_docs(texts), {})
        assert [d.id for d in out] == [f"d{i}" for i in range(len(texts))]
        np.testing.assert_allclose(
            _matrix(out), np.stack([get_model(tiny_model_dir).embed([t])[0] for t in texts]), atol=1e-5
        )
        assert len(calls) > 1 and all(rows * width <= 16 or rows == 1 for rows, width in calls)
    finally:
        executor.close()


def test_info_says_which_path_runs(encoder):
    info = encoder.info(_docs([]))
    assert (info["backend"], info["dtype"]) == ("torch", "float32")
    assert info["batching"]["batch_size"] == 4 and info["batching"]["max_tokens"] > 0
    assert "dynamic" in info["batching"]  # None here: jina's batching exists only in a running Flow
    assert set(info["cpu"]) >= {"flags", "torch_capability", "bf16"}
    assert (info["runtime"]["library"], info["runtime"]["autocast"]) == ("torch", None)


def test_openvino_encodes_and_info_says_openvino_runs_in_float32(tiny_model_dir):
    executor = EncoderExecutor(model=str(tiny_model_dir), backend="openvino", threads=1)
    try:
        info = executor.info(_docs([]))
        assert (info["backend"], info["dtype"]) == ("openvino", "float32")
        runtime = info["runtime"]
        assert (runtime["library"], runtime["inference_precision"], runtime["threads"]) == ("openvino", "f32", 1)
        out = executor.encode(_docs(), {})
        np.testing.assert_allclose(_matrix(out), get_model(tiny_model_dir).embed(TEXTS), atol=1e-4)
    finally:
        executor.close()


def test_openvino_int8_info_gives_the_artifacts_record_of_its_int8_graph(tiny_model_dir):
    executor = EncoderExecutor(model=str(tiny_model_dir), backend="openvino-int8")
    try:
        info = executor.info(_docs([]))
        assert (info["backend"], info["dtype"], info["runtime"]["file"]) == (
            "openvino-int8",
            "float32",
            "model.int8.onnx",
        )
        assert 0.5 < info["int8"]["cosine_to_fp32_mean"] <= 1.0 + 1e-6
    finally:
        executor.close()


def test_bad_parameters_are_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        EncodeParameters(batch_size=0)
    with pytest.raises(ValidationError):
        EncodeParameters(bogus=1)


def test_errors_are_clear_and_the_executor_keeps_serving(encoder):
    with pytest.raises(DataError, match="empty request"):
        encoder.encode(DocList[LabeledText](), EncodeParameters())
    docs = _docs(["fine"])
    docs.append(LabeledText(id="no-text"))
    with pytest.raises(DataError, match="document 1 .*no-text.* has no text"):
        encoder.encode(docs, EncodeParameters())
    assert _matrix(encoder.encode(_docs(["still here"]), EncodeParameters())).shape == (1, 32)


def test_executor_options_reach_the_backend(tiny_model_dir):
    executor = EncoderExecutor(model=str(tiny_model_dir), backend="onnx", batch_size=5, max_length=8)
    try:
        current = executor.served.current
        assert (current.name, current.batch_size, current.spec.max_length) == ("onnx", 5, 8)
    finally:
        executor.close()


@pytest.fixture
def followed(tmp_path, tiny_model_dir):
    """An artifact root with one published artifact and an encoder following it."""
    root = tmp_path / "artifacts"
    save_artifact(load_model(tiny_model_dir), root / "first")
    write_latest(root, "first")
    executor = EncoderExecutor(model="unused-before-publication", follow=str(root), poll_interval=0.2)
    yield root, executor
    executor.close()


def _publish_other(root: Path, tmp_path: Path, name: str) -> Path:
    other = build_tiny_model(tmp_path / f"src-{name}", seed=7)
    save_artifact(load_model(other), root / name)
    write_latest(root, name)
    return root / name


def test_follow_serves_latest_and_reload_swaps(followed, tmp_path):
    root, executor = followed
    executor.served.stop()  # drive it by hand: /reload
    assert executor.served.source == str(root / "first")
    new = _publish_other(root, tmp_path, "second")
    answer = executor.reload(_docs([]))
    assert answer["changed"] and answer["model"] == str(new)
    np.testing.assert_allclose(
        _matrix(executor.encode(_docs(), EncodeParameters())), get_model(new).embed(TEXTS), atol=1e-5
    )
    assert executor.reload(_docs([]))["changed"] is False


def test_follow_picks_up_new_artifacts_by_itself(followed, tmp_path):
    root, executor = followed
    new = _publish_other(root, tmp_path, "second")
    deadline = time.monotonic() + 30
    while executor.served.source != str(new) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert executor.served.source == str(new)


def test_damaged_artifact_keeps_the_old_model(followed, tmp_path):
    root, executor = followed
    executor.served.stop()
    new = _publish_other(root, tmp_path, "broken")
    (new / "model.safetensors").write_bytes(b"garbage")
    answer = executor.reload(_docs([]))
    assert answer["changed"] is False and "broken" in answer["last_error"]
    assert executor.served.source == str(root / "first")
    assert _matrix(executor.encode(_docs(), EncodeParameters())).shape == (len(TEXTS), 32)


def test_requests_in_flight_survive_swaps(followed, tmp_path):
    root, executor = followed
    executor.served.stop()
    failures, done = [], threading.Event()

    def hammer():
        while not done.is_set():
            try:
                executor.encode(_docs(), EncodeParameters())
            except Exception as error:  # the test collects any failure
                failures.append(error)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        for index in range(3):
            _publish_other(root, tmp_path, f"v{index}")
            assert executor.reload(_docs([]))["changed"]
    finally:
        done.set()
        worker.join()
    assert failures == []


def test_damaged_newest_artifact_at_start_up_leaves_the_previous_one_serving(followed, tmp_path, tiny_model_dir):
    root, first_executor = followed
    first_executor.close()
    new = _publish_other(root, tmp_path, "broken")
    (new / "model.safetensors").write_bytes(b"garbage")
    executor = EncoderExecutor(model=str(tiny_model_dir), follow=str(root), poll_interval=0.2)
    try:
        info = executor.info(_docs([]))
        assert info["model"] == str(root / "first")
        assert [r["artifact"] for r in info["refused"]] == ["broken"] and "broken" in info["last_error"]
        np.testing.assert_allclose(
            _matrix(executor.encode(_docs(), EncodeParameters())), get_model(root / "first").embed(TEXTS), atol=1e-5
        )
        # A rollback serves "first" again by name: the encoder keeps it, and the refusal is no longer an error.
        from tunerflow.artifact.publish import rollback

        rollback(root)
        answer = executor.reload(_docs([]))
        assert answer["model"] == str(root / "first") and answer["last_error"] is None
    finally:
        executor.close()


def test_no_artifact_loads_at_start_up_serves_the_configured_model(tmp_path, tiny_model_dir):
    root = tmp_path / "artifacts"
    save_artifact(load_model(tiny_model_dir), root / "only")
    write_latest(root, "only")
    (root / "only/model.safetensors").write_bytes(b"garbage")
    executor = EncoderExecutor(model=str(tiny_model_dir), follow=str(root))
    try:
        info = executor.info(_docs([]))
        assert info["model"] == str(tiny_model_dir) and info["refused"][0]["artifact"] == "only"
    finally:
        executor.close()


def _publish_with_int8_check(root: Path, loaded, name: str, qualifies: bool) -> None:
    """Publish ``loaded`` with both graphs and an int8 precision check that qualifies or not."""
    from tunerflow.export import save_artifact as save_with_onnx
    from tunerflow.format import PrecisionCheck

    value = 0.898 if qualifies else 0.89
    check = PrecisionCheck("model_reciprocal_rank", 0.9, value, value - 0.9, 120, 0.005, qualifies)
    records = {"onnx-int8": check}
    save_with_onnx(loaded, root / name, to_onnx=True, int8=True, check_precision=lambda *_: records)
    write_latest(root, name)


def test_backend_auto_says_its_choice_in_info_and_chooses_again_for_each_artifact(
    tmp_path, tiny_model_dir, monkeypatch
):
    import tunerflow.inference.factory as factory
    from tunerflow.inference.cpu import CpuFeatures
    from tunerflow.inference.openvino_backend import openvino_installed

    monkeypatch.setattr(factory, "cpu_features", lambda: CpuFeatures(frozenset({"avx2"})))
    root, loaded = tmp_path / "artifacts", load_model(tiny_model_dir, max_length=32)
    _publish_with_int8_check(root, loaded, "good", qualifies=True)
    executor = EncoderExecutor(model="unused-before-publication", backend="auto", follow=str(root))
    try:
        executor.served.stop()  # drive it by hand: /reload
        info = executor.info(_docs([]))
        auto = info["auto"]
        assert (info["backend"], auto["chosen"], auto["cpu_kind"], auto["considered"]) == (
            "onnx-int8",
            "onnx-int8",
            "avx2",
            [],
        )
        assert "2.23x sentence-transformers" in auto["reason"] and info["int8"] is not None
        _publish_with_int8_check(root, loaded, "bad", qualifies=False)
        info = executor.reload(_docs([]))
        fp32 = "openvino/float32" if openvino_installed() else "onnx"
        assert info["changed"] and (info["backend"], info["auto"]["chosen"]) == (fp32.split("/")[0], fp32)
        skipped = info["auto"]["considered"][0]
        assert skipped["path"] == "onnx-int8" and "beyond the bound 0.005" in skipped["skipped"]
        assert _matrix(executor.encode(_docs(), {})).shape == (len(TEXTS), 32)
    finally:
        executor.close()
