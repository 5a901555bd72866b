"""Runs on 2 CPU processes (gloo) started by torchrun: same weights as one process, failures reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training_helpers import toy_manager, toy_options, toy_setup
from tunerflow.artifact import load_model
from tunerflow.errors import ConfigError
from tunerflow.runs.launch import launch_command
from tunerflow.runs.record import RunStatus
from tunerflow.settings import section
from tunerflow.training.checkpoint import load_checkpoint, save_checkpoint
from tunerflow.training.distributed import World
from tunerflow.training.recipe import Recipe

# float32 sums in another order (2 shares padded and chunked apart, DDP's all-reduce) differ in the last bits;
# after 10 SGD steps the weights differed by 1.2e-7 at most here; a gradient off by the factor 2 fails by far.
# SGD, not AdamW, and no clipping: both normalise the gradient, so a wrong gradient scale would go unseen.
ATOL = 1e-6


@pytest.fixture(scope="module")
def still_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model without dropout: ranks draw their own dropout masks, so only then can weights agree."""
    target = tmp_path_factory.mktemp("still") / "bert"
    shutil.copytree(tiny_model_dir, target)
    config = json.loads((target / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (target / "config.json").write_text(json.dumps(config))
    return target


def equivalence_options(model: Path, devices: int, **overrides) -> dict:
    # m = 3 makes groups of 3 and 2, so batches have odd sizes: the two shares differ by one text.
    options = toy_options(model, epochs=1, num_items_per_class=3, forward_chunk=5, devices=devices,
                          optimizer="SGD", optimizer_options={}, learning_rate=0.1, max_grad_norm=None)  # fmt: skip
    options.update(overrides)
    options.update(eval_query_data=None, eval_index_data=None)
    return options


def trained(home: Path, model: Path, devices: int, **overrides):
    manager = toy_manager(home, start_worker=False)
    name = manager.start(equivalence_options(model, devices, run_name=f"d{devices}", **overrides)).run_name
    record = manager.run_now(name)
    return manager, record


@pytest.mark.parametrize("sampler", ["class", "hard"])
def test_two_processes_train_the_same_weights_as_one(tmp_path, still_model, sampler):
    _, one = trained(tmp_path / "one", still_model, devices=1, sampler=sampler)
    manager, two = trained(tmp_path / "two", still_model, devices=2, sampler=sampler)
    assert one.status is two.status is RunStatus.FINISHED, two.details
    first = load_file(str(tmp_path / "one/runs/d1/checkpoint/model.safetensors"))
    second = load_file(str(tmp_path / "two/runs/d2/checkpoint/model.safetensors"))
    initial = load_model(still_model).model.state_dict()
    assert first.keys() == second.keys()
    assert max(float((first[k] - initial[k[len("model.") :]]).abs().max()) for k in first) > 100 * ATOL  # trained
    for key in first:
        torch.testing.assert_close(second[key], first[key], atol=ATOL, rtol=0, msg=key)
    assert two.metrics["steps"] == one.metrics["steps"] == (10 if sampler == "class" else one.metrics["steps"]) > 0
    torch.testing.assert_close(
        torch.tensor(two.metrics["epoch_losses"]), torch.tensor(one.metrics["epoch_losses"]), atol=1e-5, rtol=0
    )
    state = json.loads((tmp_path / "two/runs/d2/checkpoint/state.json").read_text())
    assert state["world_size"] == 2
    log = (tmp_path / "two/runs/d2/log.txt").read_text()
    assert "launching 2 training processes" in log and "saved the artifact d2" in log
    assert manager.get("d2").progress["step"] == one.metrics["steps"]  # rank 0's progress reached the tuner


def test_a_worker_failure_is_the_run_failure_with_its_error(tmp_path, still_model, monkeypatch):
    monkeypatch.setenv("TUNERFLOW_TEST_FAULT", "fail_at_step=3,rank=1")
    _, record = trained(tmp_path, still_model, devices=2)
    assert record.status is RunStatus.FAILED
    assert record.details == "training process 1 failed: RuntimeError: injected test fault at step 3 on rank 1"
    log = (tmp_path / "runs/d2/log.txt").read_text()
    assert "Traceback" in log and "injected test fault" in log and "run failed" in log


def test_a_checkpoint_resumes_with_its_number_of_processes_only(tmp_path, tiny_model_dir):
    manager = toy_manager(tmp_path)
    try:
        setup, state = toy_setup(manager, tiny_model_dir)
        save_checkpoint(tmp_path / "checkpoint", setup, state)
        assert load_checkpoint(tmp_path / "checkpoint", setup).step == 0
        setup.world = World(rank=0, size=2)  # what a 2-process run would find
        with pytest.raises(ConfigError, match="written by 1 training process.*this run has 2"):
            load_checkpoint(tmp_path / "checkpoint", setup)
    finally:
        manager.close()


def test_devices_and_nodes_become_the_launcher_command(tmp_path):
    def recipe(**options):
        return Recipe.from_options(section("recipe"), {"train_data": "t", **options})

    local = launch_command(recipe(devices=2), tmp_path)
    assert local[1:6] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]
    assert local[-3:] == ["-m", "tunerflow.runs.worker", str(tmp_path)]
    nodes = launch_command(recipe(devices=2, nodes=3, node_rank=1, rdzv_endpoint="tuner-0.tuner:29400"), tmp_path)
    assert "--standalone" not in nodes
    assert nodes[nodes.index("--nnodes") + 1] == "3" and nodes[nodes.index("--node-rank") + 1] == "1"
    assert nodes[nodes.index("--rdzv-endpoint") + 1] == "tuner-0.tuner:29400"
    assert recipe(devices="auto", device="cuda").devices == 0
    with pytest.raises(ConfigError, match="nodes > 1 needs rdzv_endpoint"):
        recipe(nodes=2)
    with pytest.raises(ConfigError, match="node_rank must be below nodes"):
        recipe(nodes=2, node_rank=2, rdzv_endpoint="h:1")
    with pytest.raises(ConfigError, match="not host:port"):
        recipe(rdzv_endpoint="no-port")
    with pytest.raises(ConfigError, match="with device cpu give a number"):
        recipe(devices="auto")
