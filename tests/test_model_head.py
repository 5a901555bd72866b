"""The reference tool's model options: output_dim (a projection head), freeze, model_options, loss_optimizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TEXTS
from tests.training_helpers import toy_manager, toy_options, toy_setup
from tunerflow.api import get_model
from tunerflow.artifact import load_model
from tunerflow.errors import ArtifactError


@pytest.fixture(scope="module")
def head_run(tiny_model_dir, tmp_path_factory):
    """A finished run with output_dim 16 and its ONNX and int8 graphs."""
    manager = toy_manager(tmp_path_factory.mktemp("head"), start_worker=False)
    try:
        options = toy_options(tiny_model_dir, epochs=1, output_dim=16, to_onnx=True, int8=True, run_name="head")
        record = manager.run_now(manager.start(options).run_name)
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    return Path(record.artifact)


def test_output_dim_gives_an_artifact_of_that_dimension_in_every_backend(head_run):
    artifact = head_run
    config = json.loads((artifact / "tunerflow.json").read_text())
    assert config["spec"]["dimension"] == 16
    assert config["head"] == {"file": "2_Dense/model.safetensors", "in_features": 32, "out_features": 16}
    texts = TEXTS + ["why " * n for n in range(1, 40, 7)]
    torch_out = get_model(artifact).embed(texts)
    assert torch_out.shape == (len(texts), 16)
    np.testing.assert_allclose(get_model(artifact, is_onnx=True).embed(texts), torch_out, atol=1e-4)
    int8 = get_model(artifact, backend="onnx-int8").embed(texts)
    assert int8.shape == (len(texts), 16)
    cosine = (int8 * torch_out).sum(1) / np.linalg.norm(int8, axis=1) / np.linalg.norm(torch_out, axis=1)
    assert cosine[np.linalg.norm(torch_out, axis=1) > 0].min() > 0.9


def test_the_trained_head_is_what_load_model_applies(head_run):
    loaded = load_model(head_run)
    saved = load_file(str(head_run / "2_Dense" / "model.safetensors"))["linear.weight"]
    assert loaded.spec.dimension == loaded.model.dimension == 16
    assert torch.equal(loaded.model.head.weight, saved)
    encoded = loaded.tokenizer(TEXTS[:3], padding=True, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        pooled_then_head = loaded.model(encoded["input_ids"], encoded["attention_mask"])
        loaded.model.head = None
        pooled = loaded.model(encoded["input_ids"], encoded["attention_mask"])
    torch.testing.assert_close(pooled_then_head, pooled @ saved.T)
    np.testing.assert_allclose(get_model(head_run).embed(TEXTS[:3]), pooled_then_head.numpy(), atol=1e-5)


def test_sentence_transformers_applies_the_head_too(head_run):
    from sentence_transformers import SentenceTransformer

    theirs = SentenceTransformer(str(head_run), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(get_model(head_run).embed(TEXTS), theirs, atol=1e-5)


def test_a_head_that_cannot_be_read_is_named(head_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(head_run, copy)
    config_file = copy / "tunerflow.json"
    config = json.loads(config_file.read_text())
    config["head"]["out_features"] = 8
    config_file.write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="projection head .*2_Dense.* shape"):
        load_model(copy)


def _train_once(tmp_path, model_dir, **overrides):
    """Weights before and after one epoch of the toy task, and the setup it trained."""
    from tunerflow.training.loop import train
    from tunerflow.training.weights import weights_copy

    manager = toy_manager(tmp_path, start_worker=False)
    try:
        setup, state = toy_setup(manager, model_dir, epochs=1, **overrides)
        before = weights_copy(setup.model)
        train(setup, state, [])
    finally:
        manager.close()
    return before, weights_copy(setup.model), setup


@pytest.mark.parametrize("output_dim", [None, 8])
def test_freeze_trains_only_the_last_layer(tmp_path, tiny_model_dir, output_dim):
    before, after, setup = _train_once(tmp_path, tiny_model_dir, freeze=True, output_dim=output_dim)
    last = "head." if output_dim else "backbone.encoder.layer.1."  # the tiny BERT has 2 layers
    trained = {key for key in before if key.startswith(last)}
    assert trained and all(not torch.equal(before[key], after[key]) for key in trained)
    frozen = [key for key in before if key not in trained]
    assert all(torch.equal(before[key], after[key]) for key in frozen)
    given = {id(p) for group in setup.optimizer.param_groups for p in group["params"]}
    assert given == {id(p) for name, p in setup.model.named_parameters() if name.startswith(last)}


def test_without_freeze_every_layer_trains(tmp_path, tiny_model_dir):
    before, after, _ = _train_once(tmp_path, tiny_model_dir, freeze=False)
    assert not torch.equal(
        before["backbone.embeddings.word_embeddings.weight"], after["backbone.embeddings.word_embeddings.weight"]
    )
    assert not torch.equal(
        before["backbone.encoder.layer.0.output.dense.weight"], after["backbone.encoder.layer.0.output.dense.weight"]
    )


ARCFACE = {"loss": "ArcFaceLoss", "miner": "none", "loss_options": {}, "miner_options": {}}


def test_loss_optimizer_trains_the_loss_parameters_apart(tmp_path, tiny_model_dir):
    from tunerflow.training.loop import train

    manager = toy_manager(tmp_path, start_worker=False)
    try:
        options = {**ARCFACE, "loss_optimizer": "SGD", "loss_optimizer_options": {"lr": 0.0}}
        setup, state = toy_setup(manager, tiny_model_dir, epochs=1, **options)
        loss_before = {k: v.clone() for k, v in setup.loss_fn.state_dict().items()}
        model_before = setup.model.backbone.encoder.layer[0].output.dense.weight.detach().clone()
        train(setup, state, [])
    finally:
        manager.close()
    assert isinstance(setup.loss_optimizer, torch.optim.SGD)
    main = {id(p) for group in setup.optimizer.param_groups for p in group["params"]}
    assert not main & {id(p) for p in setup.loss_fn.parameters()}  # not in the model's optimizer
    assert all(torch.equal(loss_before[k], v) for k, v in setup.loss_fn.state_dict().items())  # its lr is 0
    assert not torch.equal(model_before, setup.model.backbone.encoder.layer[0].output.dense.weight)


def test_without_loss_optimizer_the_loss_parameters_train_with_the_model(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        setup, _ = toy_setup(manager, tiny_model_dir, epochs=1, **ARCFACE)
    finally:
        manager.close()
    assert setup.loss_optimizer is None
    main = {id(p) for group in setup.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in setup.loss_fn.parameters()} <= main


def test_a_loss_optimizer_resumes_with_its_state(tmp_path, tiny_model_dir):
    from tunerflow.training.checkpoint import load_checkpoint, save_checkpoint
    from tunerflow.training.loop import train

    manager = toy_manager(tmp_path, start_worker=False)
    try:
        options = {**ARCFACE, "loss_optimizer": "Adam", "loss_optimizer_options": {"lr": 0.01}}
        setup, state = toy_setup(manager, tiny_model_dir, epochs=1, **options)
        train(setup, state, [])
        save_checkpoint(tmp_path / "checkpoint", setup, state)
        fresh, _ = toy_setup(manager, tiny_model_dir, epochs=1, **options)
        load_checkpoint(tmp_path / "checkpoint", fresh)
    finally:
        manager.close()
    saved, restored = setup.loss_optimizer.state_dict(), fresh.loss_optimizer.state_dict()
    assert saved["state"] and saved["state"].keys() == restored["state"].keys()
    for key, entries in saved["state"].items():
        assert all(
            torch.equal(torch.as_tensor(v), torch.as_tensor(restored["state"][key][k])) for k, v in entries.items()
        )
    assert restored["param_groups"][0]["lr_scale"] == pytest.approx(0.01 / 2e-3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss": "TripletMarginLoss", "loss_optimizer": "SGD"}, "TripletMarginLoss has no trainable parameters"),
        ({**ARCFACE, "loss_optimizer": "Sgd"}, "loss_optimizer: unknown optimizer 'Sgd'"),
        ({**ARCFACE, "loss_optimizer": "SGD", "loss_optimizer_options": {"lr": -1}}, "lr must be a number from 0"),
        ({**ARCFACE, "loss_optimizer": "SGD", "loss_optimizer_options": {"momentun": 0.9}}, "unknown option.*momentun"),
        ({**ARCFACE, "loss_optimizer_options": {"lr": 0.1}}, "loss_optimizer_options needs loss_optimizer"),
    ],
)
def test_loss_optimizer_refusals(options, message):
    from tunerflow.errors import ConfigError
    from tunerflow.settings import section
    from tunerflow.training.recipe import Recipe

    with pytest.raises(ConfigError, match=message):
        Recipe.from_options(section("recipe"), {"train_data": "t", **options})
