"""Training: components by name, recipe refusals, the loop learns, determinism and resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.training_helpers import toy_manager, toy_options
from tunerflow.data import LabelBalancedBatches
from tunerflow.errors import ConfigError, DataError
from tunerflow.settings import section
from tunerflow.training.components import build_loss, build_miner, build_optimizer, loss_names
from tunerflow.training.recipe import Recipe
from tunerflow.training.state import TrainState, learning_rate_at


def test_loss_miner_optimizer_by_name():
    loss = build_loss("MultiSimilarityLoss", {"alpha": 3, "distance": "CosineSimilarity"}, 10, 32)
    assert loss.alpha == 3 and type(loss.distance).__name__ == "CosineSimilarity"
    reducer = build_loss("TripletMarginLoss", {"reducer": {"name": "MeanReducer"}}, 10, 32).reducer
    assert type(reducer).__name__ == "MeanReducer"
    assert build_miner(None, {}) is None
    assert build_miner("MultiSimilarityMiner", {"epsilon": 0.2}).epsilon == 0.2
    arcface = build_loss("ArcFaceLoss", {}, num_classes=7, embedding_size=32)
    assert arcface.W.shape == (32, 7)  # filled from the data and the model
    optimizer = build_optimizer("SGD", {"momentum": 0.5}, [torch.nn.Parameter(torch.zeros(2))], 0.1)
    assert optimizer.param_groups[0]["momentum"] == 0.5 and optimizer.param_groups[0]["lr"] == 0.1


def test_the_optimizer_is_fused_where_torch_has_a_kernel_unless_the_user_chose():
    from tunerflow.runs.execute import optimizer_options

    cpu = torch.device("cpu")
    assert optimizer_options(_recipe(), cpu) == {"weight_decay": 0.01, "fused": True}  # AdamW: a CPU kernel
    assert optimizer_options(_recipe(optimizer_options={"foreach": False}), cpu) == {"foreach": False}
    assert optimizer_options(_recipe(optimizer_options={"fused": False}), cpu) == {"fused": False}
    assert optimizer_options(_recipe(optimizer="RMSprop", optimizer_options={}), cpu) == {}  # no fused kernel


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build_loss("Triplet", {}, 2, 4), "unknown loss 'Triplet'; choose one of: .*TripletMarginLoss"),
        (lambda: build_loss("TripletMarginLoss", {"margn": 1}, 2, 4), "unknown option.*margn.*valid: .*margin"),
        (lambda: build_miner("Hard", {}), "unknown miner 'Hard'; choose one of: .*BatchHardMiner"),
        (lambda: build_miner("BatchHardMiner", {"k": 1}), "unknown option.*k for miner"),
        (lambda: build_loss("NTXentLoss", {"distance": "Cosine"}, 2, 4), "unknown distance 'Cosine'"),
        (lambda: build_optimizer("Adamm", {}, [], 1.0), "unknown optimizer 'Adamm'; choose one of: .*AdamW"),
        (lambda: build_optimizer("AdamW", {"lr": 1}, [], 1.0), "learning_rate"),
    ],
)
def test_unknown_names_list_valid_ones(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def _recipe(**overrides):
    return Recipe.from_options(section("recipe"), {"train_data": "train", **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"learning_rate": -1e-5}, "learning_rate must be > 0"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"epochs": 1.5}, "whole number"),
        ({"batch_size": 6, "num_items_per_class": 4}, "too small for num_items_per_class 4"),
        ({"run_name": "../../etc"}, "invalid run name"),
        ({"run_name": "a/b"}, "invalid run name"),
        ({"precision": "fp8"}, "unknown precision 'fp8'; choose one of: fp32, bf16, fp16"),
        ({"best_metric": "accuracy"}, "unknown best_metric"),
        ({"early_stopping_patience": 2}, "early_stopping_patience stops by evaluation"),
        ({"eval_index_data": "index"}, "eval_index_data needs eval_query_data"),
        ({"lr": 0.1}, "unknown run option\\(s\\) lr"),
    ],
)
def test_recipe_refusals(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _recipe(**overrides)


def test_config_yml_is_a_complete_recipe():
    recipe = _recipe()
    assert set(section("recipe")) == set(Recipe.names()) - {"train_data", "run_name", "experiment_name", "description"}
    assert recipe.loss in loss_names() and recipe.batch_size >= 2 * recipe.num_items_per_class


def test_learning_rate_schedule():
    assert learning_rate_at(0, 100, 0.1, "linear", 1.0) == pytest.approx(0.1)
    assert learning_rate_at(9, 100, 0.1, "linear", 1.0) == pytest.approx(1.0)
    assert learning_rate_at(55, 100, 0.1, "linear", 1.0) == pytest.approx(0.5)
    assert learning_rate_at(55, 100, 0.1, "cosine", 1.0) == pytest.approx(0.5)
    assert learning_rate_at(99, 100, 0.0, "constant", 1.0) == 1.0


def test_refusals_at_start_store_nothing_and_keep_data(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        with pytest.raises(DataError, match="no dataset named 'nope'"):
            manager.start(toy_options(tiny_model_dir, train_data="nope"))
        with pytest.raises(DataError, match="no dataset named 'missing'"):
            manager.start(toy_options(tiny_model_dir, eval_query_data="missing"))
        manager.append("singles", [r for r in manager.datasets.get("train").read(range(12))])
        with pytest.raises(DataError, match="0 label"):
            manager.start(toy_options(tiny_model_dir, train_data="singles"))
        with pytest.raises(ConfigError, match="unknown loss"):
            manager.start(toy_options(tiny_model_dir, loss="Nope"))
        with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
            manager.start(toy_options(tiny_model_dir, precision="fp16"))
        assert manager.list() == []
        assert len(manager.datasets.get("train")) == 240
    finally:
        manager.close()


def _run(manager, options):
    record = manager.start(options)
    return manager.run_now(record.run_name)


def test_a_tiny_model_learns_the_toy_task(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path, start_worker=False)
    try:
        options = toy_options(tiny_model_dir, epochs=8, keep_best=False, loss="MultiSimilarityLoss")
        options.update(loss_options={}, miner="MultiSimilarityMiner", miner_options={})
        record = _run(manager, options)
    finally:
        manager.close()
    assert record.status.value == "FINISHED", record.details
    metrics = record.metrics
    losses = metrics["epoch_losses"]
    assert losses[-1] < 0.85 * losses[0]
    for name in ("model_average_precision", "model_reciprocal_rank", "model_ndcg_at_k"):
        assert metrics["after"][name] > metrics["before"][name] + 0.1, name
    assert len(metrics["epochs"]) == 8 and metrics["steps"] == metrics["total_steps"]


def test_same_seed_same_weights(tmp_path, tiny_model_dir):
    weights = []
    for name in ("a", "b"):
        manager = toy_manager(tmp_path / name, start_worker=False)
        try:
            record = _run(manager, toy_options(tiny_model_dir, epochs=2, run_name="r"))
        finally:
            manager.close()
        weights.append(load_file(f"{record.artifact}/model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def chunking_setup(loaded, forward_chunk):
    """A TrainSetup with only what cutting texts into length chunks needs."""
    from types import SimpleNamespace

    from tunerflow.training.state import TrainSetup

    return TrainSetup(
        recipe=SimpleNamespace(max_length=16, forward_chunk=forward_chunk),
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        loss_fn=None,
        miner=None,
        optimizer=None,
        sampler=None,
        dataset=None,
        labels=None,
        device=torch.device("cpu"),
    )


@pytest.mark.parametrize("forward_chunk", [None, 1, 3])
def test_forward_chunks_give_the_whole_batch_embeddings(tiny_model_dir, forward_chunk):

    from tunerflow.artifact import load_model

    loaded = load_model(tiny_model_dir)
    texts = ["a", "how do i learn python ?", "guitar", "what is the best way to learn the guitar fast", "b c"]
    setup = chunking_setup(loaded, forward_chunk)
    chunks = setup.length_chunks(texts)
    assert len(chunks) == (1 if forward_chunk is None else -(-len(texts) // forward_chunk))
    assert sorted(int(row) for rows, _, _ in chunks for row in rows) == list(range(len(texts)))
    for _, _, mask in chunks:
        assert mask[:, -1].any()  # each chunk is padded only to its own longest text
    batch = loaded.tokenizer(texts, truncation=True, max_length=16, padding=True, return_tensors="pt")
    with torch.no_grad():
        whole = loaded.model(batch["input_ids"], batch["attention_mask"])
        chunked = torch.empty_like(whole)
        for rows, input_ids, mask in chunks:
            chunked = chunked.index_copy(0, rows, loaded.model(input_ids, mask))
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)


def test_one_lookup_per_step_gives_the_chunk_by_chunk_embeddings_and_gradients(tiny_model_dir):

    from tunerflow.artifact import load_model
    from tunerflow.training.step_forward import StepForward

    loaded = load_model(tiny_model_dir)
    model = loaded.model
    texts = ["a", "how do i learn python ?", "guitar", "what is the best way to learn the guitar fast", "b c"]
    setup = chunking_setup(loaded, 2)
    chunks = setup.length_chunks(texts)
    assert len(chunks) == 3
    shared, per_chunk = StepForward(model), StepForward(model)
    per_chunk.one_lookup = False
    assert shared.one_lookup  # a BERT's embeddings are the same from its looked-up token vectors
    model.eval()  # no dropout: the two passes must agree exactly
    table = model.backbone.get_input_embeddings().weight
    results = []
    for forward in (shared, per_chunk):
        model.zero_grad(set_to_none=True)
        embeddings = forward(chunks, len(texts))
        (embeddings * torch.arange(embeddings.numel()).reshape(embeddings.shape)).sum().backward()
        results.append((embeddings.detach(), table.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)
    assert results[0][1].abs().sum() > 0


def test_a_backbone_that_changes_looked_up_vectors_keeps_one_lookup_per_chunk(tiny_model_dir):
    from tunerflow.artifact import load_model
    from tunerflow.training.step_forward import StepForward

    model = load_model(tiny_model_dir).model
    backbone_forward = model.backbone.forward

    def scaled_on_the_ids_path(input_ids=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:  # as a model that scales its token vectors only when it looks them up
            inputs_embeds = model.backbone.get_input_embeddings()(input_ids) * 2.0
        return backbone_forward(inputs_embeds=inputs_embeds, **kwargs)

    model.backbone.forward = scaled_on_the_ids_path
    model.train()
    assert StepForward(model).one_lookup is False
    assert model.training  # the check ran in eval mode and put the mode back


def test_early_stopping_works_without_keep_best():
    import logging
    from types import SimpleNamespace

    from tunerflow.training.selection import Selection
    from tunerflow.training.state import StopReason, TrainState

    scores = iter([0.5, 0.7, 0.6, 0.65])  # before, then epochs 1..3: the best is epoch 1
    log = logging.getLogger("test")
    selection = Selection(lambda: {"model_average_precision": next(scores)}, "model_average_precision", log, patience=2)
    setup, state = SimpleNamespace(recipe=SimpleNamespace(epochs=5)), TrainState(steps_per_epoch=[1] * 5)
    selection.before(state)
    for epoch in (1, 2, 3):
        state.epoch = epoch
        selection.after_epoch(setup, state)
        if state.stop_reason:
            break
    assert (state.best_epoch, state.best_value, state.epoch) == (1, 0.7, 3)
    assert state.stop_reason == "early stopping"
    assert state.stop_reason is StopReason.EARLY_STOPPING
    assert not selection.restore_best(None, state)  # no best_path: nothing kept, nothing restored


def test_the_reference_tools_schedules():
    rate = learning_rate_at
    assert rate(0, 100, 0.1, "constant", 1.0) == rate(50, 100, 0.1, "none", 1.0) == 1.0  # no warm-up
    assert rate(0, 100, 0.1, "constant_with_warmup", 1.0) == pytest.approx(0.1)
    assert rate(90, 100, 0.1, "constant_with_warmup", 1.0) == 1.0
    assert rate(55, 100, 0.1, "polynomial", 1.0, lr_end=0.0) == pytest.approx(0.5)
    assert rate(55, 100, 0.1, "polynomial", 1.0, power=2.0, lr_end=0.0) == pytest.approx(0.25)
    # one restart: at a quarter of the decay the first wave is half down, at three quarters the second
    assert rate(10 + 22, 100, 0.1, "cosine_with_restarts", 1.0, num_cycles=2) == pytest.approx(0.5, abs=0.03)
    assert rate(10 + 45, 100, 0.1, "cosine_with_restarts", 1.0, num_cycles=2) == pytest.approx(1.0, abs=0.01)
    assert rate(4, 100, 0.1, "linear", 1.0, warmup_steps=5) == 1.0  # num_warmup_steps replaces warmup_ratio


def test_scheduler_step_epoch_and_options_move_the_rate():
    from tunerflow.training.state import scheduled_learning_rate

    recipe = _recipe(scheduler="linear", warmup_ratio=0.0, epochs=4, scheduler_step="epoch")
    state = TrainState(steps_per_epoch=[10] * 4, step=15, epoch=1)
    assert scheduled_learning_rate(recipe, state) == pytest.approx(recipe.learning_rate * 0.75)  # epoch 1 of 4
    recipe = _recipe(scheduler="linear", warmup_ratio=0.0, scheduler_options={"num_training_steps": 20})
    assert scheduled_learning_rate(recipe, TrainState(steps_per_epoch=[40], step=10)) == pytest.approx(
        recipe.learning_rate * 0.5
    )
    for bad, message in (
        ({"warmup": 1}, "unknown scheduler option"),
        ({"num_cycles": "x"}, "must be a number"),
        ({"num_warmup_steps": 1.5}, "whole number"),
        ({"scheduler_step": "epoch"}, "its own option"),
    ):
        with pytest.raises(ConfigError, match=message):
            _recipe(scheduler_options=bad)


def test_random_sampler_ignores_labels_and_val_split_holds_out_whole_labels():
    from tunerflow.data.sampler import RandomBatches, held_out_labels

    labels = np.repeat(np.arange(10), 4)
    held = held_out_labels(labels, 0.3, seed=1)
    assert len(set(labels[held])) == 3 and not set(labels[held]) & set(labels[~held])
    batches = RandomBatches(labels, 8, seed=1, keep=~held).epoch(0)
    positions = np.concatenate(batches)
    assert sorted(positions) == sorted(np.flatnonzero(~held)) and max(len(b) for b in batches) == 8
    balanced = LabelBalancedBatches(labels, 8, 4, seed=1, keep=~held).epoch(0)
    assert not set(np.concatenate(balanced)) & set(np.flatnonzero(held))


def test_num_workers_prepare_the_same_inputs(tmp_path, tiny_model_dir):
    from tests.training_helpers import toy_manager, toy_setup

    manager = toy_manager(tmp_path, start_worker=False)
    try:
        prepared = {}
        for workers in (0, 3):
            setup, _ = toy_setup(manager, tiny_model_dir, num_workers=workers)
            batches = setup.batches(0)
            prepared[workers] = [(i.index, i.labels.tolist(), [c[1].tolist() for c in i.chunks])
                                 for i in setup.step_inputs(batches, 1)]  # fmt: skip
    finally:
        manager.close()
    assert prepared[0] == prepared[3] and prepared[0][0][0] == 1


def test_hard_batches_in_a_run_use_the_starting_models_neighbours_saved_for_a_resume(tmp_path, tiny_model_dir):
    import logging

    from tunerflow.artifact import load_model
    from tunerflow.data.sampler import HardBatches
    from tunerflow.runs.execute import make_sampler
    from tunerflow.runs.hard_batches import NEIGHBOURS_FILE, hard_batch_neighbours
    from tunerflow.training.distributed import World

    manager = toy_manager(tmp_path / "home", start_worker=False)
    record = manager.run_now(manager.start(toy_options(tiny_model_dir, epochs=1, sampler="hard")).run_name)
    assert record.status.value == "FINISHED", record.details
    log = manager.logs(record.run_name)[0]
    assert "hard batches: 12 labels' nearest labels by the starting model" in log
    directory = manager.runs_dir / record.run_name
    saved = np.load(directory / NEIGHBOURS_FILE)
    assert saved.shape[0] == 12 and (saved[:, 0] >= 0).all()

    # A resume reads them back instead of embedding with the (since trained) model: the same batches.
    recipe = Recipe.from_options(section("recipe"), record.recipe)
    dataset = manager.datasets.get("train")
    keep = np.ones(len(dataset), dtype=bool)

    def must_not_embed(texts):
        raise AssertionError("a resumed run recomputed the neighbours")

    loaded = load_model(tiny_model_dir)
    again = hard_batch_neighbours(
        recipe, loaded, dataset, keep, directory, World(), logging.getLogger(), must_not_embed
    )
    assert np.array_equal(again, saved)
    first, resumed = (
        make_sampler(recipe, dataset.labels(), keep, saved),
        make_sampler(recipe, dataset.labels(), keep, again),
    )
    assert isinstance(first, HardBatches)
    assert all(np.array_equal(a, b) for a, b in zip(first.epoch(3), resumed.epoch(3), strict=True))
    fresh = hard_batch_neighbours(recipe, loaded, dataset, keep, tmp_path / "elsewhere", World(), logging.getLogger())
    assert np.array_equal(fresh, saved)  # computed by the starting model: what the run computed
    manager.close()
